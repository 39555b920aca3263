/**
 * The media layer's interfaces. Each platform backend implements them
 * (today: Linux with X11, FFmpeg, Opus, PulseAudio and XTest, through the
 * native shim in `ffi/`); `media/platform.ts` picks one at runtime.
 *
 * @module
 */

/** One captured screen image, BGRA, top row first. */
export interface CapturedFrame {
  /** Pixel width. */
  readonly width: number;
  /** Pixel height. */
  readonly height: number;
  /** Bytes per row (≥ width × 4). */
  readonly stride: number;
  /**
   * Pixels, B, G, R, X per pixel. The buffer belongs to the capturer and is
   * reused by its next `capture()`: copy what must outlive that.
   */
  readonly data: Uint8Array;
  /** When the image was taken: CLOCK_MONOTONIC microseconds. */
  readonly captureTimeUs: number;
  /** Pointer position on the captured area, or undefined when it is outside. */
  readonly cursor?: { readonly x: number; readonly y: number };
}

/** What to capture. */
export interface CaptureOptions {
  /** X display (default: $DISPLAY). */
  display?: string;
  /** Monitor index (Xinerama/RandR order), or the whole screen when undefined. */
  monitor?: number;
}

/** A screen capturer. */
export interface Capturer {
  /** Captured area size. */
  readonly width: number;
  /** Captured area size. */
  readonly height: number;
  /** Takes one image now. */
  capture(): Promise<CapturedFrame>;
  /** The display's refresh rate in Hz, when the platform reports one. */
  refreshRate?(): number | undefined;
  /** Frees the capturer. */
  close(): void;
}

/** Video encoder settings. */
export interface EncoderOptions {
  /** Frame size (even numbers). */
  width: number;
  /** Frame size (even numbers). */
  height: number;
  /** Nominal frame rate. */
  fps: number;
  /** Target bitrate in bits per second; change it any time with `setBitrate`. */
  bitrateBps: number;
  /** Which encoder: "auto" probes hardware (VA-API, NVENC) and falls back to libx264. */
  encoder?: "auto" | "libx264" | "h264_vaapi" | "h264_nvenc";
  /** Spread intra coding over frames (periodic intra refresh) instead of large keyframes. */
  intraRefresh?: boolean;
  /** Frames between forced keyframes (0 = only on request). */
  keyframeInterval?: number;
}

/** H.264 codec configuration for a decoder (e.g. WebCodecs `avc1` `description`). */
export interface CodecConfig {
  /** RFC 6381 codec string, e.g. "avc1.42c01f". */
  readonly codec: string;
  /** Sequence parameter set NAL unit (no start code). */
  readonly sps: Uint8Array;
  /** Picture parameter set NAL unit (no start code). */
  readonly pps: Uint8Array;
  /** AVCDecoderConfigurationRecord built from sps and pps. */
  readonly avcc: Uint8Array;
}

/** One encoded frame: an H.264 access unit in Annex-B form. */
export interface EncodedAccessUnit {
  /** Annex-B bytes (start codes, SPS/PPS in front of keyframes). */
  readonly data: Uint8Array;
  /** Whether this is an IDR frame. */
  readonly keyframe: boolean;
  /** Capture timestamp of the source frame, carried through. */
  readonly captureTimeUs: number;
  /** Time spent converting the source image (ms). */
  readonly convertMs: number;
  /** Time spent in the encoder (ms). */
  readonly encodeMs: number;
}

/** A low-latency video encoder: one frame in, one access unit out. */
export interface VideoEncoder {
  /** The encoder actually running, e.g. "libx264". */
  readonly name: string;
  /** Codec configuration (known once the encoder opened). */
  readonly config: CodecConfig;
  /** Encodes one captured frame. */
  encode(frame: CapturedFrame): Promise<EncodedAccessUnit>;
  /** New target bitrate, effective from the next frame, without a keyframe. */
  setBitrate(bitrateBps: number): void;
  /** Makes the next frame a keyframe. */
  requestKeyframe(): void;
  /** Frees the encoder. */
  close(): void;
}

/** A decoded picture, BGRA. */
export interface DecodedFrame {
  /** Pixel width. */
  readonly width: number;
  /** Pixel height. */
  readonly height: number;
  /** BGRA pixels, width × 4 bytes per row; owned by the caller. */
  readonly data: Uint8Array;
  /** Time spent decoding and converting (ms). */
  readonly decodeMs: number;
}

/** An H.264 decoder (headless clients and tests). */
export interface VideoDecoder {
  /** Decodes one Annex-B access unit; undefined when it produced no picture. */
  decode(accessUnit: Uint8Array): Promise<DecodedFrame | undefined>;
  /** Frees the decoder. */
  close(): void;
}

/** Audio format used everywhere in Wavry: 48 kHz, 16-bit, interleaved, 10 ms frames. */
export const AUDIO_SAMPLE_RATE = 48_000;
/** Samples per channel in one 10 ms frame. */
export const AUDIO_FRAME_SAMPLES = 480;

/** Captured or played audio: one 10 ms frame, interleaved signed 16-bit samples. */
export interface AudioFrame {
  /** Interleaved samples, AUDIO_FRAME_SAMPLES × channels. */
  readonly samples: Int16Array;
  /** Channel count (1 or 2). */
  readonly channels: number;
  /** CLOCK_MONOTONIC microseconds when the frame was read. */
  readonly captureTimeUs: number;
}

/** Records audio (e.g. the monitor of the default output). */
export interface AudioSource {
  /** Reads the next 10 ms frame (waits for it). */
  read(): Promise<AudioFrame>;
  /** Stops recording. */
  close(): void;
}

/** Plays audio. */
export interface AudioSink {
  /** Queues one 10 ms frame for playback. */
  write(samples: Int16Array): Promise<void>;
  /** Stops playback. */
  close(): void;
}

/** Opus encoder at 48 kHz, 10 ms frames, low-delay mode. */
export interface AudioEncoder {
  /** Encodes one frame of interleaved samples to one Opus packet. */
  encode(samples: Int16Array): Uint8Array;
  /** Frees it. */
  close(): void;
}

/** Opus decoder. */
export interface AudioDecoder {
  /** Decodes one packet (or conceals a lost one when `packet` is undefined). */
  decode(packet: Uint8Array | undefined): Int16Array;
  /** Frees it. */
  close(): void;
}

/** Mouse buttons, numbered as the web's MouseEvent.button: 0 left, 1 middle, 2 right, 3 back, 4 forward. */
export type MouseButton = 0 | 1 | 2 | 3 | 4;

/** Injects input into the host's desktop. */
export interface InputInjector {
  /** Presses or releases the key that `KeyboardEvent.code` names (e.g. "KeyA", "Enter"). */
  key(code: string, down: boolean): void;
  /** Moves the pointer to absolute screen coordinates. */
  moveAbsolute(x: number, y: number): void;
  /** Moves the pointer by a delta (pointer lock / relative mode). */
  moveRelative(dx: number, dy: number): void;
  /** Presses or releases a mouse button. */
  button(button: MouseButton, down: boolean): void;
  /** Scrolls: positive dy is down, positive dx is right, in wheel notches. */
  wheel(dx: number, dy: number): void;
  /** Frees it. */
  close(): void;
}

/** A virtual gamepad (standard mapping of the web Gamepad API). */
export interface GamepadInjector {
  /** Applies one snapshot: 17 buttons (0..1) and 4 axes (-1..1), as `Gamepad.buttons`/`axes`. */
  update(buttons: readonly number[], axes: readonly number[]): void;
  /** Removes the device. */
  close(): void;
}

/** Thrown when the current platform has no backend for a media component yet. */
export class UnsupportedPlatformError extends Error {
  /** Which component, e.g. "screen capture". */
  readonly component: string;
  /** The platform, e.g. "windows". */
  readonly platform: string;

  /** Builds the error with a message that says what is missing. */
  constructor(component: string, platform: string, detail = "") {
    super(
      `${component} is not supported on this platform yet (${platform})` +
        (detail ? `: ${detail}` : ""),
    );
    this.name = "UnsupportedPlatformError";
    this.component = component;
    this.platform = platform;
  }
}
