/**
 * The player's WebSocket protocol between the local server (Deno) and the
 * page (Chromium): one binary message per access unit, JSON text messages for
 * everything else. `page.js` mirrors these constants; docs/CLIENT.md
 * ("## Player") has the tables.
 *
 * @module
 */

/** Binary message types (byte 0 of a binary message, server -> page). */
export const BinaryType = {
  /** One access unit: {@linkcode FRAME_HEADER_BYTES} of header, then the bitstream. */
  Frame: 1,
  /** One Opus packet: {@linkcode AUDIO_HEADER_BYTES} of header, then the packet. */
  Audio: 2,
} as const;

/** Flags of a frame message (byte 1). */
export const FrameFlags = {
  /** The access unit is an IDR frame (a WebCodecs "key" chunk). */
  Keyframe: 1,
  /** Bytes 16..23 hold a valid host -> local clock offset. */
  OffsetKnown: 2,
} as const;

/** Size of the frame header; the bitstream starts at the offset in bytes 2..3. */
export const FRAME_HEADER_BYTES = 32;

/** One decoded frame message header. */
export interface FrameHeader {
  /** Frame id assigned by the host. */
  readonly frameId: number;
  /** Whether the access unit is an IDR frame. */
  readonly keyframe: boolean;
  /** Capture time on the host clock (CLOCK_MONOTONIC µs on Linux hosts). */
  readonly captureTimeUs: number;
  /**
   * Host -> local clock offset in µs: local wall clock (µs since the Unix
   * epoch, the page's `performance.timeOrigin + performance.now()`) =
   * host time + offset. Undefined when unknown.
   */
  readonly offsetUs: number | undefined;
  /** When the server sent the message, local wall clock µs. */
  readonly sendUs: number;
  /** Where the bitstream starts. */
  readonly headerBytes: number;
}

/**
 * Builds a frame message (little-endian):
 *
 * | offset | type | field |
 * |---|---|---|
 * | 0 | u8 | message type = 1 |
 * | 1 | u8 | flags: 1 keyframe, 2 offset known |
 * | 2 | u16 | header length (32): the bitstream starts here |
 * | 4 | u32 | frame id |
 * | 8 | f64 | capture time, host clock, µs |
 * | 16 | f64 | host -> local clock offset, µs (0 when unknown) |
 * | 24 | f64 | server send time, local wall clock µs |
 * | 32 | bytes | bitstream (Annex-B, or 4-byte length-prefixed in "avc" mode) |
 */
export function encodeFrameMessage(
  header: Omit<FrameHeader, "headerBytes">,
  bitstream: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(FRAME_HEADER_BYTES + bitstream.length);
  const view = new DataView(out.buffer);
  const offsetKnown = header.offsetUs !== undefined && Number.isFinite(header.offsetUs);
  view.setUint8(0, BinaryType.Frame);
  view.setUint8(
    1,
    (header.keyframe ? FrameFlags.Keyframe : 0) | (offsetKnown ? FrameFlags.OffsetKnown : 0),
  );
  view.setUint16(2, FRAME_HEADER_BYTES, true);
  view.setUint32(4, header.frameId >>> 0, true);
  view.setFloat64(8, header.captureTimeUs, true);
  view.setFloat64(16, offsetKnown ? header.offsetUs! : 0, true);
  view.setFloat64(24, header.sendUs, true);
  out.set(bitstream, FRAME_HEADER_BYTES);
  return out;
}

/** Parses a frame message header, or undefined when it is not one. */
export function decodeFrameHeader(message: Uint8Array): FrameHeader | undefined {
  if (message.length < FRAME_HEADER_BYTES || message[0] !== BinaryType.Frame) return undefined;
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const flags = view.getUint8(1);
  const headerBytes = view.getUint16(2, true);
  if (headerBytes < FRAME_HEADER_BYTES || headerBytes > message.length) return undefined;
  return {
    frameId: view.getUint32(4, true),
    keyframe: (flags & FrameFlags.Keyframe) !== 0,
    captureTimeUs: view.getFloat64(8, true),
    offsetUs: (flags & FrameFlags.OffsetKnown) !== 0 ? view.getFloat64(16, true) : undefined,
    sendUs: view.getFloat64(24, true),
    headerBytes,
  };
}

/** Bitstream form the page's decoder gets. */
/** Length of an AUDIO message's header. */
export const AUDIO_HEADER_BYTES = 16;

/**
 * Server -> page AUDIO message (little-endian): type u8 (2), channels u8, header length u16,
 * sequence u32, capture time f64 (host clock µs), then one Opus packet (10 ms at 48 kHz).
 */
export function encodeAudioMessage(
  sequence: number,
  channels: number,
  captureTimeUs: number,
  packet: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(AUDIO_HEADER_BYTES + packet.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, BinaryType.Audio);
  view.setUint8(1, channels);
  view.setUint16(2, AUDIO_HEADER_BYTES, true);
  view.setUint32(4, sequence >>> 0, true);
  view.setFloat64(8, captureTimeUs, true);
  out.set(packet, AUDIO_HEADER_BYTES);
  return out;
}

export type BitstreamFormat = "annexb" | "avc";

/** Server -> page text message: the stream configuration. */
export interface ConfigMessage {
  /** Message type. */
  readonly t: "config";
  /** RFC 6381 codec string, e.g. "avc1.42c01f". */
  readonly codec: string;
  /** Coded width. */
  readonly width: number;
  /** Coded height. */
  readonly height: number;
  /** "annexb": no description, Annex-B chunks; "avc": `description` = avcc, length-prefixed chunks. */
  readonly format: BitstreamFormat;
  /** AVCDecoderConfigurationRecord, base64 (used in "avc" mode). */
  readonly avcc: string;
  /** Whether the page reads the pattern rows back after each paint. */
  readonly readback: boolean;
}

/** Server -> page text message: overlay lines pushed by the client program. */
export interface OverlayMessage {
  /** Message type. */
  readonly t: "overlay";
  /** Name -> value, shown one per line. */
  readonly stats: Record<string, number | string>;
}

/** An input event from the page; `ts` is the page's wall clock in µs when it was seen. */
export type PlayerInput =
  | { readonly t: "key"; readonly code: string; readonly down: boolean; readonly ts: number }
  | {
    readonly t: "move";
    /** Normalized 0..1 over the video picture (letterbox excluded, clamped). */
    readonly x: number;
    /** Normalized 0..1 over the video picture. */
    readonly y: number;
    readonly ts: number;
  }
  | {
    readonly t: "moverel";
    /** Relative motion in CSS pixels (pointer lock). */
    readonly dx: number;
    readonly dy: number;
    readonly ts: number;
  }
  | {
    readonly t: "button";
    /** MouseEvent.button: 0 left, 1 middle, 2 right, 3 back, 4 forward. */
    readonly button: number;
    readonly down: boolean;
    /** Normalized pointer position at the time (absolute mode). */
    readonly x: number;
    readonly y: number;
    readonly ts: number;
  }
  | {
    readonly t: "wheel";
    /** Wheel notches, positive right (pixel deltas / 100, line deltas / 3). */
    readonly dx: number;
    /** Wheel notches, positive down. */
    readonly dy: number;
    readonly ts: number;
  }
  | {
    readonly t: "gamepad";
    /** Gamepad.index. */
    readonly index: number;
    /** Gamepad.id. */
    readonly id: string;
    /** False once it disconnected (then buttons and axes are empty). */
    readonly connected: boolean;
    /** Button values 0..1 (standard mapping: 17). */
    readonly buttons: number[];
    /** Axis values -1..1 (standard mapping: 4). */
    readonly axes: number[];
    readonly ts: number;
  };

/** Page -> server: one painted frame. */
export interface PlayerPaintReport {
  /** Message type. */
  readonly t: "paint";
  /** The frame's id. */
  readonly frameId: number;
  /** Host capture time of the frame (µs, host clock). */
  readonly captureTimeUs: number;
  /** When the page received the message (local wall clock µs). */
  readonly recvUs: number;
  /** Server send -> page receive (µs), WebSocket transit on localhost. */
  readonly wsUs: number;
  /** decode() call -> output callback (ms). */
  readonly decodeMs: number;
  /** drawImage duration (ms). */
  readonly paintMs: number;
  /** When drawImage returned (local wall clock µs): the frame is on the canvas. */
  readonly presentUs: number;
  /** presentUs - (captureTimeUs + offset): capture-to-canvas latency, when the offset is known. */
  readonly latencyUs: number | null;
  /** Frame counter read back from pattern row 0, or null when readback is off. */
  readonly counter: number | null;
  /** Time the scene drew the frame (pattern row 1, host CLOCK_MONOTONIC ms mod 2^32), or null. */
  readonly drawnMs: number | null;
  /**
   * presentUs - (drawnMs × 1000 + offset): glass-to-glass from the moment the
   * xprobe scene drew the frame to the canvas, when the offset is known and
   * the scene carries the rows (host clock ms must be below 2^32), else null.
   */
  readonly drawnToPresentUs: number | null;
  /** getImageData time (ms), or null. */
  readonly readbackMs: number | null;
}

/** Page -> server: a summary, every 250 ms. */
export interface PlayerSummaryStats {
  /** Message type. */
  readonly t: "stats";
  /** Frame messages received since the page loaded. */
  readonly framesReceived: number;
  /** Frames output by the decoder. */
  readonly framesDecoded: number;
  /** Frames drawn on the canvas. */
  readonly framesPainted: number;
  /** Frames discarded (before a keyframe, after an error, or with a closed decoder). */
  readonly framesDropped: number;
  /** Decoder errors. */
  readonly decodeErrors: number;
  /** Key requests sent. */
  readonly keyRequests: number;
  /** Painted frames per second over the last interval. */
  readonly fps: number;
  /** Mean and max decode time over the last interval (ms). */
  readonly decodeMsAvg: number;
  readonly decodeMsMax: number;
  /** Mean and max drawImage time over the last interval (ms). */
  readonly paintMsAvg: number;
  readonly paintMsMax: number;
  /** Mean capture-to-canvas latency over the last interval (ms), or null. */
  readonly latencyMsAvg: number | null;
  /** VideoDecoder.decodeQueueSize now. */
  readonly decodeQueue: number;
  /** Video size being shown. */
  readonly width: number;
  readonly height: number;
  /** Whether pointer lock is active. */
  readonly pointerLocked: boolean;
  /** Opus packets decoded since the page loaded. */
  readonly audioPackets: number;
  /** Level of the audio decoded over the last interval (dBFS, RMS), or null without audio. */
  readonly audioLevelDb: number | null;
  /** Frequency estimate of that audio (Hz, from zero crossings), or null. */
  readonly audioFrequencyHz: number | null;
  /** The AudioContext's state ("running", "suspended", …), or "none". */
  readonly audioState: string;
}

/** What the page reports: per-frame paint reports and 250 ms summaries. */
export type PlayerStats = PlayerPaintReport | PlayerSummaryStats;

/** Page -> server: please have the host send a keyframe. */
export interface KeyRequestMessage {
  /** Message type. */
  readonly t: "keyreq";
  /** Why: "start" (frame before any keyframe), "error" (decoder error), "gap" (missing frame ids), "reset". */
  readonly reason: string;
}

/** Every page -> server text message. */
export type PageMessage = PlayerInput | PlayerStats | KeyRequestMessage | { readonly t: "hello" };

const INPUT_TYPES = new Set(["key", "move", "moverel", "button", "wheel", "gamepad"]);

const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Validates one page text message; undefined when malformed. */
export function parsePageMessage(text: string): PageMessage | undefined {
  let m: Record<string, unknown>;
  try {
    const parsed = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
    m = parsed;
  } catch {
    return undefined;
  }
  const t = m.t;
  if (typeof t !== "string") return undefined;
  if (INPUT_TYPES.has(t) && !num(m.ts)) return undefined;
  switch (t) {
    case "key":
      return typeof m.code === "string" && typeof m.down === "boolean"
        ? m as unknown as PageMessage
        : undefined;
    case "move":
      return num(m.x) && num(m.y) ? m as unknown as PageMessage : undefined;
    case "moverel":
      return num(m.dx) && num(m.dy) ? m as unknown as PageMessage : undefined;
    case "button":
      return num(m.button) && typeof m.down === "boolean" && num(m.x) && num(m.y)
        ? m as unknown as PageMessage
        : undefined;
    case "wheel":
      return num(m.dx) && num(m.dy) ? m as unknown as PageMessage : undefined;
    case "gamepad":
      return num(m.index) && typeof m.connected === "boolean" && Array.isArray(m.buttons) &&
          Array.isArray(m.axes) && m.buttons.every(num) && m.axes.every(num)
        ? m as unknown as PageMessage
        : undefined;
    case "paint":
      return num(m.frameId) && num(m.presentUs) ? m as unknown as PageMessage : undefined;
    case "stats":
      return num(m.framesPainted) ? m as unknown as PageMessage : undefined;
    case "keyreq":
      return { t: "keyreq", reason: typeof m.reason === "string" ? m.reason : "" };
    case "hello":
      return { t: "hello" };
    default:
      return undefined;
  }
}
