/**
 * DELTA congestion control: a delay-oriented controller (target bitrate,
 * pacing rate, FEC ratio, frame rate) and the leaky-bucket pacer it drives,
 * plus a deterministic simulator harness for evidence. Sans-IO. See
 * docs/DELTA.md.
 *
 * @module
 */
export * from "./controller.ts";
export * from "./pacer.ts";
export * from "./budget.ts";
