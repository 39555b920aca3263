/**
 * The race's synthetic picture and time code. One implementation, in
 * media/pattern.ts: Wavry's host renders the same picture through
 * media/synthetic_capture.ts, so both contenders send the same video.
 *
 * @module
 */
export * from "../../media/pattern.ts";
