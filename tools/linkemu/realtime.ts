/**
 * The emulator's worker runs under SCHED_FIFO: see edge/thread_priority.ts
 * (shared with the host's input worker and the client's session worker).
 *
 * @module
 */
export { setThreadNormal, setThreadRealtime } from "../../edge/thread_priority.ts";
