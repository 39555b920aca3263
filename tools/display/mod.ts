/**
 * A virtual X display with something moving on it: Xvfb and the wavry-xprobe
 * scene, for the demo, the tests and the benches.
 *
 * @module
 */
export { startXvfb, type VirtualDisplay } from "./xvfb.ts";
export { type ProbeEvent, readPatternRow, XProbe, xprobePath } from "./xprobe.ts";
