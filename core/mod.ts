/**
 * RIFT's sans-IO core: the wire format, frames, video fragmentation and
 * reassembly, reliable channels, RTT estimation and the per-connection
 * session state machine. Nothing here reads a clock or touches a socket.
 *
 * @module
 */
export * from "./result.ts";
export * from "./wire.ts";
export * from "./frames.ts";
export * from "./fragment.ts";
export * from "./reliable.ts";
export * from "./rtt.ts";
export * from "./session.ts";
export * from "./media_lane.ts";
export * from "./stream.ts";
export * from "./clock_extension.ts";
export * from "./delta/mod.ts";
export * from "./stun/mod.ts";
