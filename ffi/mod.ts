/**
 * The native shim's TypeScript side: loading, error and handle conventions.
 * The media bindings that use it live in `media/`.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./handles.ts";
export * from "./library.ts";
export * from "./udp.ts";
export * from "./tun.ts";
