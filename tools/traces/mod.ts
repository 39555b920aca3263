/**
 * Mahimahi trace inspection. `main.ts` is the command line; the analysis
 * itself is `traceOutages` in core/sim.
 *
 * @module
 */
export { type TraceOutages, traceOutages } from "../../core/sim/mod.ts";
