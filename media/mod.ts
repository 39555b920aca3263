/**
 * Wavry's media layer: capture, encode, decode, audio and input injection as
 * TypeScript interfaces (`types.ts`), a run-time choice of backend for the
 * platform (`platform.ts`), and the implementations behind it.
 *
 * Most code wants only the platform-neutral part: the interfaces and the
 * `open*` factories, which return this machine's implementations or throw
 * an `UnsupportedPlatformError`. The Linux classes are exported too, for
 * options only they have and for tests.
 *
 * @example
 * ```ts
 * import { mediaBackend } from "./mod.ts";
 *
 * const media = mediaBackend(); // e.g. "linux-x11"
 * const input = media.openInputInjector();
 * input.key("KeyA", true);
 * input.key("KeyA", false);
 * input.close();
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./platform.ts";
export * from "./keymap.ts";
export * from "./h264.ts";
export * from "./pacer.ts";
export * from "./clock.ts";
export * from "./convert.ts";
export * from "./opus.ts";
export * from "./linux/capture_x11.ts";
export * from "./linux/video_encoder.ts";
export * from "./linux/video_decoder.ts";
export * from "./linux/audio_pulse.ts";
export * from "./linux/input_xtest.ts";
export * from "./linux/gamepad_uinput.ts";
