/**
 * Picks the media backend for the platform Wavry runs on, at run time.
 *
 * Today there is one: Linux, with X11 (MIT-SHM capture, XTest input),
 * FFmpeg H.264, Opus, PulseAudio (also served by PipeWire's pulse server)
 * and uinput gamepads. Everything else is named and refused with an
 * {@linkcode UnsupportedPlatformError} that says what is missing, never faked:
 *
 * | platform | capture, input | codecs, audio, gamepad |
 * |---|---|---|
 * | Linux with an X server (`DISPLAY`) | X11 | Linux |
 * | Linux, Wayland only (`WAYLAND_DISPLAY`, no `DISPLAY`) | unsupported (needs the PipeWire portals) | Linux |
 * | Linux without any display | unsupported unless `display` is passed | Linux |
 * | Windows | unsupported (WGC/DXGI, SendInput) | unsupported |
 * | macOS | unsupported (ScreenCaptureKit, CGEvent) | unsupported |
 *
 * @module
 */
import {
  OpusDecoder,
  type OpusDecoderOptions,
  OpusEncoder,
  type OpusEncoderOptions,
} from "./opus.ts";
import {
  DEFAULT_MONITOR,
  PulseAudioSink,
  PulseAudioSource,
  type PulseSinkOptions,
  type PulseSourceOptions,
} from "./linux/audio_pulse.ts";
import { type X11CaptureOptions, X11Capturer } from "./linux/capture_x11.ts";
import { UinputGamepad, type UinputGamepadOptions } from "./linux/gamepad_uinput.ts";
import { XTestInputInjector, type XTestInputOptions } from "./linux/input_xtest.ts";
import { FfmpegVideoDecoder } from "./linux/video_decoder.ts";
import { type FfmpegEncoderOptions, FfmpegVideoEncoder } from "./linux/video_encoder.ts";
import {
  type AudioDecoder,
  type AudioEncoder,
  type AudioSink,
  type AudioSource,
  type Capturer,
  type GamepadInjector,
  type InputInjector,
  UnsupportedPlatformError,
  type VideoDecoder,
  type VideoEncoder,
} from "./types.ts";

/** What the backend choice depends on: the OS and, on Linux, the display session. */
export interface PlatformInfo {
  /** `Deno.build.os`. */
  readonly os: typeof Deno.build.os;
  /** `$DISPLAY`: an X server to use (may be XWayland). */
  readonly display?: string;
  /** `$WAYLAND_DISPLAY`: a Wayland compositor is running. */
  readonly waylandDisplay?: string;
}

/** Backend names: which implementation family a {@linkcode MediaBackend} stands for. */
export type BackendName =
  | "linux-x11"
  | "linux-wayland"
  | "linux-headless"
  | "windows"
  | "darwin"
  | `unsupported-${string}`;

/** Screen capture options any backend takes (Linux adds `copy`). */
export type OpenCaptureOptions = X11CaptureOptions;
/** Video encoder options (Linux adds FFmpeg's preset, pixel format and scaler). */
export type OpenVideoEncoderOptions = FfmpegEncoderOptions;
/** Audio capture options; the default source is the desktop's audio (the default sink's monitor). */
export type OpenAudioSourceOptions = PulseSourceOptions;
/** Audio playback options. */
export type OpenAudioSinkOptions = PulseSinkOptions;
/** Input injection options. */
export type OpenInputOptions = XTestInputOptions;
/** Virtual gamepad options. */
export type OpenGamepadOptions = UinputGamepadOptions;

/** Factories for every media component of one platform. */
export interface MediaBackend {
  /** Which backend this is. */
  readonly name: BackendName;
  /** The platform it was chosen for. */
  readonly platform: PlatformInfo;
  /** Things worth knowing about this choice (e.g. XWayland limits); empty when none. */
  readonly notes: readonly string[];
  /** Opens a screen capturer. */
  openCapturer(options?: OpenCaptureOptions): Capturer;
  /** Opens an H.264 encoder. */
  openVideoEncoder(options: OpenVideoEncoderOptions): VideoEncoder;
  /** Opens an H.264 decoder. */
  openVideoDecoder(): VideoDecoder;
  /** Starts recording audio (default: what the desktop plays). */
  openAudioSource(options?: OpenAudioSourceOptions): Promise<AudioSource>;
  /** Starts audio playback. */
  openAudioSink(options?: OpenAudioSinkOptions): Promise<AudioSink>;
  /** Opens an Opus encoder. */
  openAudioEncoder(options?: OpusEncoderOptions): AudioEncoder;
  /** Opens an Opus decoder. */
  openAudioDecoder(options?: OpusDecoderOptions): AudioDecoder;
  /** Opens keyboard and mouse injection into the desktop. */
  openInputInjector(options?: OpenInputOptions): InputInjector;
  /** Creates a virtual gamepad. */
  openGamepad(options?: OpenGamepadOptions): GamepadInjector;
}

/**
 * Reads the platform: `Deno.build.os` and the DISPLAY / WAYLAND_DISPLAY
 * variables (without env permission they count as unset). `env` and `os`
 * are for tests.
 */
export function detectPlatform(
  env: (name: string) => string | undefined = readEnv,
  os: typeof Deno.build.os = Deno.build.os,
): PlatformInfo {
  const display = env("DISPLAY") || undefined;
  const waylandDisplay = env("WAYLAND_DISPLAY") || undefined;
  return { os, display, waylandDisplay };
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: as if unset
  }
}

/** The backend name `platform` gets. */
export function backendName(platform: PlatformInfo): BackendName {
  switch (platform.os) {
    case "linux":
      if (platform.display) return "linux-x11";
      return platform.waylandDisplay ? "linux-wayland" : "linux-headless";
    case "windows":
      return "windows";
    case "darwin":
      return "darwin";
    default:
      return `unsupported-${platform.os}`;
  }
}

/** What each component would need on the platforms that have no backend yet. */
const MISSING: Record<string, Record<string, string>> = {
  windows: {
    "screen capture": "it needs Windows.Graphics.Capture or DXGI Desktop Duplication",
    "video encoding": "it needs Media Foundation or a vendor SDK (NVENC, AMF, Quick Sync)",
    "video decoding": "it needs Media Foundation or a native FFmpeg build for Windows",
    "audio capture": "it needs WASAPI loopback capture",
    "audio playback": "it needs WASAPI",
    "audio encoding": "the native shim (and its Opus) is only built for Linux so far",
    "audio decoding": "the native shim (and its Opus) is only built for Linux so far",
    "input injection": "it needs SendInput",
    "virtual gamepads": "it needs a virtual bus driver such as ViGEmBus",
  },
  darwin: {
    "screen capture": "it needs ScreenCaptureKit",
    "video encoding": "it needs VideoToolbox",
    "video decoding": "it needs VideoToolbox",
    "audio capture": "it needs ScreenCaptureKit audio or a CoreAudio loopback device",
    "audio playback": "it needs CoreAudio",
    "audio encoding": "the native shim (and its Opus) is only built for Linux so far",
    "audio decoding": "the native shim (and its Opus) is only built for Linux so far",
    "input injection": "it needs CGEvent posting (and the Accessibility permission)",
    "virtual gamepads": "it needs a virtual HID device (a DriverKit driver)",
  },
};

const WAYLAND_DETAIL =
  "a Wayland-only session needs the xdg-desktop-portal ScreenCast and RemoteDesktop portals " +
  "with PipeWire, which Wavry does not implement yet; log in to an X11 session, or pass the " +
  "display of an X server";
const HEADLESS_DETAIL =
  "no display session (DISPLAY and WAYLAND_DISPLAY are unset): set DISPLAY to an X server " +
  "(e.g. one started with Xvfb) or pass `display`";

function unsupported(component: string, name: BackendName, detail?: string): never {
  const platform = name === "darwin"
    ? "macos"
    : name.startsWith("unsupported-")
    ? name.slice("unsupported-".length)
    : name;
  throw new UnsupportedPlatformError(
    component,
    platform,
    detail ?? MISSING[name]?.[component] ?? "Wavry has media backends for Linux only",
  );
}

function linuxBackend(name: BackendName, platform: PlatformInfo): MediaBackend {
  /** The X display for capture or input, or an UnsupportedPlatformError saying why there is none. */
  const x11Display = (component: string, requested?: string): string => {
    const display = requested || platform.display;
    if (display) return display;
    return unsupported(component, name, platform.waylandDisplay ? WAYLAND_DETAIL : HEADLESS_DETAIL);
  };
  const notes: string[] = [];
  if (platform.display && platform.waylandDisplay) {
    notes.push(
      `DISPLAY ${platform.display} is probably XWayland inside a Wayland session: capture sees ` +
        "and input reaches only X11 windows there",
    );
  }
  return {
    name,
    platform,
    notes,
    openCapturer: (options = {}) =>
      X11Capturer.open({ ...options, display: x11Display("screen capture", options.display) }),
    openVideoEncoder: (options) => FfmpegVideoEncoder.open(options),
    openVideoDecoder: () => FfmpegVideoDecoder.open(),
    openAudioSource: (options = {}) =>
      PulseAudioSource.open({ source: DEFAULT_MONITOR, ...options }),
    openAudioSink: (options = {}) => PulseAudioSink.open(options),
    openAudioEncoder: (options) => new OpusEncoder(options),
    openAudioDecoder: (options) => new OpusDecoder(options),
    openInputInjector: (options = {}) =>
      XTestInputInjector.open({ display: x11Display("input injection", options.display) }),
    openGamepad: (options) => UinputGamepad.open(options),
  };
}

function unsupportedBackend(name: BackendName, platform: PlatformInfo): MediaBackend {
  return {
    name,
    platform,
    notes: [],
    openCapturer: () => unsupported("screen capture", name),
    openVideoEncoder: () => unsupported("video encoding", name),
    openVideoDecoder: () => unsupported("video decoding", name),
    openAudioSource: () => Promise.reject(unsupportedError("audio capture", name)),
    openAudioSink: () => Promise.reject(unsupportedError("audio playback", name)),
    openAudioEncoder: () => unsupported("audio encoding", name),
    openAudioDecoder: () => unsupported("audio decoding", name),
    openInputInjector: () => unsupported("input injection", name),
    openGamepad: () => unsupported("virtual gamepads", name),
  };
}

function unsupportedError(component: string, name: BackendName): UnsupportedPlatformError {
  try {
    return unsupported(component, name);
  } catch (error) {
    return error as UnsupportedPlatformError;
  }
}

/**
 * The media backend for `platform` (default: this machine, read now). Its
 * factories open the platform's implementations, or throw (reject, for the
 * async ones) an {@linkcode UnsupportedPlatformError} naming the component
 * and the platform.
 */
export function mediaBackend(platform: PlatformInfo = detectPlatform()): MediaBackend {
  const name = backendName(platform);
  return platform.os === "linux"
    ? linuxBackend(name, platform)
    : unsupportedBackend(name, platform);
}

/** Opens a screen capturer on this machine's backend. */
export function openCapturer(options?: OpenCaptureOptions): Capturer {
  return mediaBackend().openCapturer(options);
}

/** Opens an H.264 encoder on this machine's backend. */
export function openVideoEncoder(options: OpenVideoEncoderOptions): VideoEncoder {
  return mediaBackend().openVideoEncoder(options);
}

/** Opens an H.264 decoder on this machine's backend. */
export function openVideoDecoder(): VideoDecoder {
  return mediaBackend().openVideoDecoder();
}

/** Starts recording audio (default: what the desktop plays) on this machine's backend. */
export function openAudioSource(options?: OpenAudioSourceOptions): Promise<AudioSource> {
  return mediaBackend().openAudioSource(options);
}

/** Starts audio playback on this machine's backend. */
export function openAudioSink(options?: OpenAudioSinkOptions): Promise<AudioSink> {
  return mediaBackend().openAudioSink(options);
}

/** Opens an Opus encoder on this machine's backend. */
export function openAudioEncoder(options?: OpusEncoderOptions): AudioEncoder {
  return mediaBackend().openAudioEncoder(options);
}

/** Opens an Opus decoder on this machine's backend. */
export function openAudioDecoder(options?: OpusDecoderOptions): AudioDecoder {
  return mediaBackend().openAudioDecoder(options);
}

/** Opens keyboard and mouse injection on this machine's backend. */
export function openInputInjector(options?: OpenInputOptions): InputInjector {
  return mediaBackend().openInputInjector(options);
}

/** Creates a virtual gamepad on this machine's backend. */
export function openGamepad(options?: OpenGamepadOptions): GamepadInjector {
  return mediaBackend().openGamepad(options);
}
