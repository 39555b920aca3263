/**
 * Wavry's application messages over RIFT: what the host and the client say
 * to each other inside RIFT's opaque CONTROL and INPUT channel messages and
 * inside a video frame's bytes. Sans-IO and pure: bytes in, values out.
 *
 * - CONTROL messages ({@linkcode ControlMessage}): the first byte is the
 *   message type (STREAM_CONFIG, INPUT_APPLIED, STATS, ERROR). Keyframe
 *   requests are RIFT's own KEYFRAME_REQUEST frame and are not repeated here.
 * - INPUT messages ({@linkcode InputMessage}): an application sequence
 *   number, the client's send time, and one input event.
 * - Video payloads: a 24-byte timing header (host clock) followed by the
 *   Annex-B access unit, as given to `Session.sendVideoFrame`.
 *
 * Decoders never throw: untrusted bytes give a {@linkcode Result} with a
 * {@linkcode StreamError}; byte fields of decoded values are views of the
 * input. Encoders throw `RangeError` for values the format cannot carry.
 * Every decoder is strict (no trailing bytes, booleans are 0 or 1), so a
 * decoded message encodes back to exactly the same bytes. All integers are
 * big-endian. The byte layout is specified in `docs/STREAM.md`.
 *
 * @module
 */

import { err, ok, type Result } from "./result.ts";

/** What was wrong with a message. */
export type StreamErrorKind =
  /** The message ends before a field does. */
  | "Truncated"
  /** Bytes follow the last field. */
  | "TrailingBytes"
  /** The message or event type byte is not one this version knows. */
  | "UnknownType"
  /** A field holds a value the format forbids (a boolean of 2, bad UTF-8, a time ≥ 2^53, ...). */
  | "InvalidValue";

/** A decoding error: a kind to count in metrics and a detail for logs. */
export interface StreamError {
  /** Error class, stable for metrics and tests. */
  kind: StreamErrorKind;
  /** Free-form explanation. */
  detail: string;
}

/** CONTROL message types (the first byte of a CONTROL message). */
export const ControlType = {
  /** Host → client: video size, rate and decoder configuration. */
  StreamConfig: 0x01,
  /** Host → client: an input message was applied, with its timing. */
  InputApplied: 0x02,
  /** Host → client: encoder and stage timings. */
  Stats: 0x03,
  /** Either way: something failed, with a code and a text. */
  Error: 0x04,
} as const;
/** A CONTROL message type code. */
export type ControlType = typeof ControlType[keyof typeof ControlType];

/** Input event types (byte 12 of an INPUT message). */
export const InputEventType = {
  /** Key press or release by `KeyboardEvent.code`. */
  Key: 0x01,
  /** Pointer to an absolute position, normalized over the captured area. */
  MouseAbs: 0x02,
  /** Pointer moved by a delta (pointer lock). */
  MouseRel: 0x03,
  /** Mouse button press or release (web `MouseEvent.button` numbering). */
  Button: 0x04,
  /** Wheel, in 1/120 of a notch. */
  Wheel: 0x05,
  /** One gamepad snapshot. */
  Gamepad: 0x06,
} as const;
/** An input event type code. */
export type InputEventType = typeof InputEventType[keyof typeof InputEventType];

/** Codes of an ERROR message (any u16 decodes; unknown codes mean {@linkcode HostErrorCode.Internal}). */
export const HostErrorCode = {
  /** Anything else. */
  Internal: 0,
  /** Screen capture failed. */
  CaptureFailed: 1,
  /** The video encoder failed. */
  EncoderFailed: 2,
  /** Input injection failed. */
  InputFailed: 3,
  /** The peer asked for something this side does not support. */
  Unsupported: 4,
} as const;

/** Longest `KeyboardEvent.code` an INPUT KEY event carries. */
export const MAX_KEY_CODE_LENGTH = 32;
/** Number of buttons in a GAMEPAD event (the web Gamepad API's standard mapping). */
export const GAMEPAD_BUTTONS = 17;
/** Number of axes in a GAMEPAD event. */
export const GAMEPAD_AXES = 4;
/** Wheel units per notch (as the web's `WheelEvent` in pixel mode on most platforms). */
export const WHEEL_UNITS_PER_NOTCH = 120;
/** Largest normalized MOUSE_ABS coordinate (the far edge of the captured area). */
export const MOUSE_ABS_MAX = 0xffff;
/** Bytes in front of every INPUT event: sequence (4) + client_time_us (8). */
export const INPUT_HEADER_LENGTH = 12;
/** Length of the timing header in front of a video payload's access unit. */
export const VIDEO_TIMING_LENGTH = 24;

// ------------------------------------------------------------------ message types

/** STREAM_CONFIG: what the client needs to configure its decoder. */
export interface StreamConfigMessage {
  /** Message tag. */
  type: "stream-config";
  /** Video width in pixels (u16). */
  width: number;
  /** Video height in pixels (u16). */
  height: number;
  /** Nominal frame rate (u16). */
  fps: number;
  /** RFC 6381 codec string, printable ASCII, 1..255 bytes (e.g. "avc1.42c01f"). */
  codec: string;
  /** AVCDecoderConfigurationRecord (≤ 65535 bytes; may be empty). */
  avcc: Uint8Array;
}

/** INPUT_APPLIED: the host applied one input message. */
export interface InputAppliedMessage {
  /** Message tag. */
  type: "input-applied";
  /** The input message's sequence (u32). */
  sequence: number;
  /** The input message's `clientTimeUs`, echoed (client clock, < 2^53). */
  clientTimeUs: number;
  /** When the host finished injecting it (host CLOCK_MONOTONIC µs, < 2^53). */
  hostAppliedUs: number;
}

/** One host-side stage's median time. */
export interface StageTiming {
  /** Stage name, UTF-8, 1..255 bytes (e.g. "capture", "encode"). */
  name: string;
  /** Median duration in µs (u32). */
  p50Us: number;
}

/** STATS: what the host's video path is doing. */
export interface StatsMessage {
  /** Message tag. */
  type: "stats";
  /** Encoder name, UTF-8, 0..255 bytes (e.g. "libx264"). */
  encoder: string;
  /** Current target bitrate in bits per second (u32). */
  targetBitrateBps: number;
  /** Frame rate being encoded (u8; lowered by congestion control when the link cannot carry more). */
  fps: number;
  /** FEC parity packets per data packet, in thousandths (u16). */
  fecPermille: number;
  /** The congestion controller's state (u8 on the wire, see {@linkcode CONGESTION_STATES}). */
  congestionState: CongestionState;
  /** The controller's queuing-delay estimate in µs (u32). */
  queuingDelayUs: number;
  /** Up to 255 stage medians (may be empty). */
  stages: StageTiming[];
}

/** Congestion controller states as STATS carries them; "off" = fixed bitrate, no controller. */
export const CONGESTION_STATES = [
  "off",
  "stable",
  "rising",
  "congested",
  "draining",
  "competing",
] as const;
/** One of {@linkcode CONGESTION_STATES}. */
export type CongestionState = typeof CONGESTION_STATES[number];

/** ERROR: a failure to report to the peer. */
export interface ErrorMessage {
  /** Message tag. */
  type: "error";
  /** A {@linkcode HostErrorCode} (u16). */
  code: number;
  /** Human-readable text, UTF-8, ≤ 65535 bytes. */
  text: string;
}

/** Any CONTROL message. */
export type ControlMessage =
  | StreamConfigMessage
  | InputAppliedMessage
  | StatsMessage
  | ErrorMessage;

/** Key press or release. */
export interface KeyEvent {
  /** Event tag. */
  type: "key";
  /** `KeyboardEvent.code`, 1..32 printable ASCII characters without spaces. */
  code: string;
  /** Pressed (true) or released. */
  down: boolean;
}

/** Pointer to an absolute position, normalized: 0 is the captured area's left/top edge, 65535 its right/bottom. */
export interface MouseAbsEvent {
  /** Event tag. */
  type: "mouse-abs";
  /** Horizontal position 0..65535. */
  x: number;
  /** Vertical position 0..65535. */
  y: number;
}

/** Relative pointer motion in host pixels. */
export interface MouseRelEvent {
  /** Event tag. */
  type: "mouse-rel";
  /** i16. */
  dx: number;
  /** i16. */
  dy: number;
}

/** Mouse button (web numbering: 0 left, 1 middle, 2 right, 3 back, 4 forward; any u8 is carried). */
export interface ButtonEvent {
  /** Event tag. */
  type: "button";
  /** u8. */
  button: number;
  /** Pressed (true) or released. */
  down: boolean;
}

/** Wheel, in 1/120 notch; positive dy scrolls down, positive dx right. */
export interface WheelEvent {
  /** Event tag. */
  type: "wheel";
  /** i16. */
  dx: number;
  /** i16. */
  dy: number;
}

/** One gamepad snapshot (standard mapping). */
export interface GamepadEvent {
  /** Event tag. */
  type: "gamepad";
  /** Gamepad index (u8). */
  index: number;
  /** 17 button values, 0 (released) .. 255 (fully pressed). */
  buttons: number[];
  /** 4 axes, i16: -32768..32767 for -1..1. */
  axes: number[];
}

/** Any input event. */
export type InputEvent =
  | KeyEvent
  | MouseAbsEvent
  | MouseRelEvent
  | ButtonEvent
  | WheelEvent
  | GamepadEvent;

/** One INPUT channel message. */
export interface InputMessage {
  /** Application sequence number (u32), one per message, wrapping. */
  sequence: number;
  /** When the client sent it (client clock µs, < 2^53). */
  clientTimeUs: number;
  /** The event. */
  event: InputEvent;
}

/** The timing header of a video payload, host CLOCK_MONOTONIC µs (each < 2^53). */
export interface VideoTiming {
  /** The encoder got the captured frame. */
  encodeStartUs: number;
  /** The encoder returned the access unit. */
  encodeEndUs: number;
  /** The frame was handed to the RIFT session (0 when not stamped). */
  handedToSessionUs: number;
}

/** A decoded video payload. */
export interface VideoPayload {
  /** Timing header. */
  timing: VideoTiming;
  /** The Annex-B access unit (a view of the payload). */
  accessUnit: Uint8Array;
}

// ------------------------------------------------------------------ writer

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function rangeCheck(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} ${value} is not an integer in ${min}..${max}`);
  }
}

function utf8Bytes(name: string, text: string, minBytes: number, maxBytes: number): Uint8Array {
  if (typeof text !== "string" || !text.isWellFormed()) {
    throw new RangeError(`${name} is not a well-formed string`);
  }
  const bytes = utf8.encode(text);
  if (bytes.length < minBytes || bytes.length > maxBytes) {
    throw new RangeError(`${name} is ${bytes.length} UTF-8 bytes, not ${minBytes}..${maxBytes}`);
  }
  return bytes;
}

function asciiBytes(
  name: string,
  text: string,
  lowest: number,
  minBytes: number,
  maxBytes: number,
): Uint8Array {
  if (typeof text !== "string" || text.length < minBytes || text.length > maxBytes) {
    throw new RangeError(`${name} must be ${minBytes}..${maxBytes} ASCII characters`);
  }
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < lowest || c > 0x7e) throw new RangeError(`${name} has a non-printable character`);
    bytes[i] = c;
  }
  return bytes;
}

/** A growing big-endian writer for encoders. */
class Writer {
  #bytes: Uint8Array;
  #view: DataView;
  #length = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
    this.#view = new DataView(this.#bytes.buffer);
  }

  #room(n: number): number {
    const at = this.#length;
    if (at + n > this.#bytes.length) {
      const bigger = new Uint8Array(Math.max(this.#bytes.length * 2, at + n));
      bigger.set(this.#bytes);
      this.#bytes = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    this.#length += n;
    return at;
  }

  u8(v: number): this {
    const at = this.#room(1);
    this.#view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    const at = this.#room(2);
    this.#view.setUint16(at, v);
    return this;
  }
  i16(v: number): this {
    const at = this.#room(2);
    this.#view.setInt16(at, v);
    return this;
  }
  u32(v: number): this {
    const at = this.#room(4);
    this.#view.setUint32(at, v);
    return this;
  }
  u64(v: number): this {
    const at = this.#room(8);
    this.#view.setUint32(at, Math.floor(v / 2 ** 32));
    this.#view.setUint32(at + 4, v >>> 0);
    return this;
  }
  bytes(b: Uint8Array): this {
    const at = this.#room(b.length); // first: it may replace #bytes
    this.#bytes.set(b, at);
    return this;
  }
  finish(): Uint8Array {
    return this.#bytes.slice(0, this.#length);
  }
}

// ------------------------------------------------------------------ reader

/** Thrown inside a decoder only, and always caught there: decoders return Results. */
class Stop {
  constructor(readonly error: StreamError) {}
}

function stop(kind: StreamErrorKind, detail: string): never {
  throw new Stop({ kind, detail });
}

/** A bounds-checked big-endian reader over untrusted bytes. */
class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #take(n: number, field: string): number {
    const at = this.#at;
    if (at + n > this.#bytes.length) {
      stop("Truncated", `${field} needs ${n} bytes at offset ${at}, ${this.#bytes.length} in all`);
    }
    this.#at += n;
    return at;
  }

  u8(field: string): number {
    return this.#view.getUint8(this.#take(1, field));
  }
  u16(field: string): number {
    return this.#view.getUint16(this.#take(2, field));
  }
  i16(field: string): number {
    return this.#view.getInt16(this.#take(2, field));
  }
  u32(field: string): number {
    return this.#view.getUint32(this.#take(4, field));
  }
  u64(field: string): number {
    const at = this.#take(8, field);
    const high = this.#view.getUint32(at);
    if (high > 0x1fffff) stop("InvalidValue", `${field} is 2^53 or more`);
    return high * 2 ** 32 + this.#view.getUint32(at + 4);
  }
  bool(field: string): boolean {
    const v = this.u8(field);
    if (v > 1) stop("InvalidValue", `${field} is ${v}, not 0 or 1`);
    return v === 1;
  }
  bytes(n: number, field: string): Uint8Array {
    const at = this.#take(n, field);
    return this.#bytes.subarray(at, at + n);
  }
  utf8(n: number, field: string, minBytes = 0): string {
    if (n < minBytes) stop("InvalidValue", `${field} is empty`);
    const bytes = this.bytes(n, field);
    try {
      return strictUtf8.decode(bytes);
    } catch {
      return stop("InvalidValue", `${field} is not valid UTF-8`);
    }
  }
  ascii(n: number, field: string, lowest: number, minBytes: number): string {
    if (n < minBytes) stop("InvalidValue", `${field} is shorter than ${minBytes}`);
    const bytes = this.bytes(n, field);
    let text = "";
    for (const c of bytes) {
      if (c < lowest || c > 0x7e) stop("InvalidValue", `${field} has byte 0x${c.toString(16)}`);
      text += String.fromCharCode(c);
    }
    return text;
  }
  end(): void {
    const left = this.#bytes.length - this.#at;
    if (left !== 0) stop("TrailingBytes", `${left} bytes after the last field`);
  }
}

function decodeWith<T>(bytes: Uint8Array, read: (r: Reader) => T): Result<T, StreamError> {
  if (!(bytes instanceof Uint8Array)) {
    return err({ kind: "InvalidValue", detail: "not a Uint8Array" });
  }
  try {
    const r = new Reader(bytes);
    const value = read(r);
    r.end();
    return ok(value);
  } catch (e) {
    if (e instanceof Stop) return err(e.error);
    // Unreachable by construction; still never throw out of a decoder.
    return err({ kind: "InvalidValue", detail: String(e) });
  }
}

const MAX_U53 = Number.MAX_SAFE_INTEGER;

// ------------------------------------------------------------------ CONTROL

/**
 * Encodes a CONTROL message.
 * @throws {RangeError} when a field is out of range (see the message types).
 */
export function encodeControl(message: ControlMessage): Uint8Array {
  switch (message.type) {
    case "stream-config": {
      const { width, height, fps, avcc } = message;
      rangeCheck("width", width, 0, 0xffff);
      rangeCheck("height", height, 0, 0xffff);
      rangeCheck("fps", fps, 0, 0xffff);
      const codec = asciiBytes("codec", message.codec, 0x20, 1, 255);
      if (!(avcc instanceof Uint8Array) || avcc.length > 0xffff) {
        throw new RangeError("avcc must be a Uint8Array of at most 65535 bytes");
      }
      return new Writer(10 + codec.length + avcc.length)
        .u8(ControlType.StreamConfig).u16(width).u16(height).u16(fps)
        .u8(codec.length).bytes(codec).u16(avcc.length).bytes(avcc).finish();
    }
    case "input-applied":
      rangeCheck("sequence", message.sequence, 0, 0xffffffff);
      rangeCheck("clientTimeUs", message.clientTimeUs, 0, MAX_U53);
      rangeCheck("hostAppliedUs", message.hostAppliedUs, 0, MAX_U53);
      return new Writer(21).u8(ControlType.InputApplied).u32(message.sequence)
        .u64(message.clientTimeUs).u64(message.hostAppliedUs).finish();
    case "stats": {
      const encoder = utf8Bytes("encoder", message.encoder, 0, 255);
      rangeCheck("targetBitrateBps", message.targetBitrateBps, 0, 0xffffffff);
      rangeCheck("fps", message.fps, 0, 0xff);
      rangeCheck("fecPermille", message.fecPermille, 0, 0xffff);
      rangeCheck("queuingDelayUs", message.queuingDelayUs, 0, 0xffffffff);
      const state = CONGESTION_STATES.indexOf(message.congestionState);
      if (state < 0) throw new RangeError(`unknown congestion state ${message.congestionState}`);
      if (!Array.isArray(message.stages) || message.stages.length > 255) {
        throw new RangeError("stats carry at most 255 stages");
      }
      const w = new Writer(64).u8(ControlType.Stats).u8(encoder.length).bytes(encoder)
        .u32(message.targetBitrateBps).u8(message.fps).u16(message.fecPermille).u8(state)
        .u32(message.queuingDelayUs).u8(message.stages.length);
      for (const stage of message.stages) {
        const name = utf8Bytes("stage name", stage.name, 1, 255);
        rangeCheck("p50Us", stage.p50Us, 0, 0xffffffff);
        w.u8(name.length).bytes(name).u32(stage.p50Us);
      }
      return w.finish();
    }
    case "error": {
      rangeCheck("code", message.code, 0, 0xffff);
      const text = utf8Bytes("text", message.text, 0, 0xffff);
      return new Writer(5 + text.length).u8(ControlType.Error).u16(message.code)
        .u16(text.length).bytes(text).finish();
    }
    default:
      throw new RangeError(`unknown control message ${(message as { type: unknown }).type}`);
  }
}

/** Decodes a CONTROL message; never throws. `avcc` is a view of `bytes`. */
export function decodeControl(bytes: Uint8Array): Result<ControlMessage, StreamError> {
  return decodeWith<ControlMessage>(bytes, (r) => {
    const type = r.u8("type");
    switch (type) {
      case ControlType.StreamConfig: {
        const width = r.u16("width");
        const height = r.u16("height");
        const fps = r.u16("fps");
        const codec = r.ascii(r.u8("codec_len"), "codec", 0x20, 1);
        const avcc = r.bytes(r.u16("avcc_len"), "avcc");
        return { type: "stream-config", width, height, fps, codec, avcc };
      }
      case ControlType.InputApplied:
        return {
          type: "input-applied",
          sequence: r.u32("sequence"),
          clientTimeUs: r.u64("client_time_us"),
          hostAppliedUs: r.u64("host_applied_us"),
        };
      case ControlType.Stats: {
        const encoder = r.utf8(r.u8("encoder_len"), "encoder");
        const targetBitrateBps = r.u32("target_bitrate_bps");
        const fps = r.u8("fps");
        const fecPermille = r.u16("fec_permille");
        const stateCode = r.u8("congestion_state");
        const congestionState = CONGESTION_STATES[stateCode];
        if (congestionState === undefined) {
          stop(
            "InvalidValue",
            `congestion_state ${stateCode} is not 0..${CONGESTION_STATES.length - 1}`,
          );
        }
        const queuingDelayUs = r.u32("queuing_delay_us");
        const count = r.u8("stage_count");
        const stages: StageTiming[] = [];
        for (let i = 0; i < count; i++) {
          const name = r.utf8(r.u8("name_len"), "stage name", 1);
          stages.push({ name, p50Us: r.u32("p50_us") });
        }
        return {
          type: "stats",
          encoder,
          targetBitrateBps,
          fps,
          fecPermille,
          congestionState,
          queuingDelayUs,
          stages,
        };
      }
      case ControlType.Error: {
        const code = r.u16("code");
        return { type: "error", code, text: r.utf8(r.u16("text_len"), "text") };
      }
      default:
        return stop("UnknownType", `control message type 0x${type.toString(16)}`);
    }
  });
}

// ------------------------------------------------------------------ INPUT

/**
 * Encodes an INPUT message.
 * @throws {RangeError} when a field is out of range (see the event types).
 */
export function encodeInput(message: InputMessage): Uint8Array {
  rangeCheck("sequence", message.sequence, 0, 0xffffffff);
  rangeCheck("clientTimeUs", message.clientTimeUs, 0, MAX_U53);
  const w = new Writer(INPUT_HEADER_LENGTH + 1 + 34).u32(message.sequence)
    .u64(message.clientTimeUs);
  const event = message.event;
  switch (event.type) {
    case "key": {
      const code = asciiBytes("key code", event.code, 0x21, 1, MAX_KEY_CODE_LENGTH);
      w.u8(InputEventType.Key).u8(code.length).bytes(code).u8(event.down ? 1 : 0);
      break;
    }
    case "mouse-abs":
      rangeCheck("x", event.x, 0, MOUSE_ABS_MAX);
      rangeCheck("y", event.y, 0, MOUSE_ABS_MAX);
      w.u8(InputEventType.MouseAbs).u16(event.x).u16(event.y);
      break;
    case "mouse-rel":
      rangeCheck("dx", event.dx, -0x8000, 0x7fff);
      rangeCheck("dy", event.dy, -0x8000, 0x7fff);
      w.u8(InputEventType.MouseRel).i16(event.dx).i16(event.dy);
      break;
    case "button":
      rangeCheck("button", event.button, 0, 0xff);
      w.u8(InputEventType.Button).u8(event.button).u8(event.down ? 1 : 0);
      break;
    case "wheel":
      rangeCheck("dx", event.dx, -0x8000, 0x7fff);
      rangeCheck("dy", event.dy, -0x8000, 0x7fff);
      w.u8(InputEventType.Wheel).i16(event.dx).i16(event.dy);
      break;
    case "gamepad": {
      rangeCheck("index", event.index, 0, 0xff);
      if (event.buttons.length !== GAMEPAD_BUTTONS || event.axes.length !== GAMEPAD_AXES) {
        throw new RangeError(`a gamepad has ${GAMEPAD_BUTTONS} buttons and ${GAMEPAD_AXES} axes`);
      }
      w.u8(InputEventType.Gamepad).u8(event.index);
      for (const b of event.buttons) {
        rangeCheck("gamepad button", b, 0, 0xff);
        w.u8(b);
      }
      for (const a of event.axes) {
        rangeCheck("gamepad axis", a, -0x8000, 0x7fff);
        w.i16(a);
      }
      break;
    }
    default:
      throw new RangeError(`unknown input event ${(event as { type: unknown }).type}`);
  }
  return w.finish();
}

/** Decodes an INPUT message; never throws. */
export function decodeInput(bytes: Uint8Array): Result<InputMessage, StreamError> {
  return decodeWith<InputMessage>(bytes, (r) => {
    const sequence = r.u32("sequence");
    const clientTimeUs = r.u64("client_time_us");
    const type = r.u8("event_type");
    let event: InputEvent;
    switch (type) {
      case InputEventType.Key: {
        const length = r.u8("code_len");
        if (length > MAX_KEY_CODE_LENGTH) {
          stop("InvalidValue", `key code of ${length} bytes, at most ${MAX_KEY_CODE_LENGTH}`);
        }
        const code = r.ascii(length, "key code", 0x21, 1);
        event = { type: "key", code, down: r.bool("down") };
        break;
      }
      case InputEventType.MouseAbs:
        event = { type: "mouse-abs", x: r.u16("x"), y: r.u16("y") };
        break;
      case InputEventType.MouseRel:
        event = { type: "mouse-rel", dx: r.i16("dx"), dy: r.i16("dy") };
        break;
      case InputEventType.Button:
        event = { type: "button", button: r.u8("button"), down: r.bool("down") };
        break;
      case InputEventType.Wheel:
        event = { type: "wheel", dx: r.i16("dx"), dy: r.i16("dy") };
        break;
      case InputEventType.Gamepad: {
        const index = r.u8("index");
        const buttons: number[] = [];
        for (let i = 0; i < GAMEPAD_BUTTONS; i++) buttons.push(r.u8("gamepad button"));
        const axes: number[] = [];
        for (let i = 0; i < GAMEPAD_AXES; i++) axes.push(r.i16("gamepad axis"));
        event = { type: "gamepad", index, buttons, axes };
        break;
      }
      default:
        return stop("UnknownType", `input event type 0x${type.toString(16)}`);
    }
    return { sequence, clientTimeUs, event };
  });
}

// ------------------------------------------------------------------ video payload

function checkTiming(timing: VideoTiming): void {
  rangeCheck("encodeStartUs", timing.encodeStartUs, 0, MAX_U53);
  rangeCheck("encodeEndUs", timing.encodeEndUs, 0, MAX_U53);
  rangeCheck("handedToSessionUs", timing.handedToSessionUs, 0, MAX_U53);
}

/**
 * Writes the 24-byte timing header into the first bytes of `payload` in
 * place (for a buffer that already holds the access unit at offset 24).
 * @throws {RangeError} when `payload` is shorter than 24 bytes or a time is out of range.
 */
export function writeVideoTiming(payload: Uint8Array, timing: VideoTiming): void {
  if (payload.length < VIDEO_TIMING_LENGTH) {
    throw new RangeError(`a video payload has at least ${VIDEO_TIMING_LENGTH} bytes`);
  }
  checkTiming(timing);
  const view = new DataView(payload.buffer, payload.byteOffset, VIDEO_TIMING_LENGTH);
  const times = [timing.encodeStartUs, timing.encodeEndUs, timing.handedToSessionUs];
  for (let i = 0; i < 3; i++) {
    view.setUint32(i * 8, Math.floor(times[i] / 2 ** 32));
    view.setUint32(i * 8 + 4, times[i] >>> 0);
  }
}

/**
 * Builds a video payload: the timing header, then `accessUnit` (copied).
 * @throws {RangeError} when a time is out of range.
 */
export function encodeVideoPayload(timing: VideoTiming, accessUnit: Uint8Array): Uint8Array {
  checkTiming(timing);
  const payload = new Uint8Array(VIDEO_TIMING_LENGTH + accessUnit.length);
  payload.set(accessUnit, VIDEO_TIMING_LENGTH);
  writeVideoTiming(payload, timing);
  return payload;
}

/** Splits a video payload into its timing header and access unit (a view); never throws. */
export function decodeVideoPayload(payload: Uint8Array): Result<VideoPayload, StreamError> {
  if (!(payload instanceof Uint8Array)) {
    return err({ kind: "InvalidValue", detail: "not a Uint8Array" });
  }
  try {
    const r = new Reader(payload.subarray(0, VIDEO_TIMING_LENGTH));
    const timing: VideoTiming = {
      encodeStartUs: r.u64("encode_start_us"),
      encodeEndUs: r.u64("encode_end_us"),
      handedToSessionUs: r.u64("handed_to_session_us"),
    };
    return ok({ timing, accessUnit: payload.subarray(VIDEO_TIMING_LENGTH) });
  } catch (e) {
    if (e instanceof Stop) return err(e.error);
    return err({ kind: "InvalidValue", detail: String(e) });
  }
}
