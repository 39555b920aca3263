/**
 * The media clock: CLOCK_MONOTONIC in microseconds, the clock every capture
 * timestamp uses. Stages measured against it on one machine compare directly.
 *
 * @module
 */
export { monotonicMicros } from "../ffi/library.ts";
