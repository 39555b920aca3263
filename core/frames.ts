/**
 * RIFT v1 frame codec: the frames carried back to back in the plaintext of a
 * SEALED packet. Every frame starts with a type byte and is self-delimiting;
 * an unknown type makes the whole packet malformed.
 *
 * Decoding is the attack surface: {@linkcode decodeFrames} never throws and
 * returns `data` fields as subarray views of the plaintext. Encoding is our
 * own code: encoders throw `RangeError` for out-of-range values. The byte
 * layout is specified in `docs/RIFT_SPEC.md`.
 *
 * @module
 */

import { err, ok, type Result } from "./result.ts";
import {
  AEAD_TAG_LENGTH,
  DEFAULT_MAX_DATAGRAM,
  HEADER_LENGTH,
  MAX_U53,
  type WireError,
  type WireErrorKind,
} from "./wire.ts";

/** Frame type codes (the first byte of every frame). */
export const FrameType = {
  /** One fragment of an encoded video frame. */
  VideoFragment: 0x10,
  /** One encoded audio packet. */
  Audio: 0x11,
  /** Reliable input channel message. */
  Input: 0x12,
  /** Reliable control channel message. */
  Control: 0x13,
  /** Acknowledgement for a reliable channel. */
  Ack: 0x14,
  /** FEC parity over a group of video fragments. */
  FecParity: 0x15,
  /** Receive-side congestion feedback. */
  Feedback: 0x16,
  /** Request for a fresh keyframe. */
  KeyframeRequest: 0x17,
  /** RTT / clock probe. */
  Ping: 0x18,
  /** Answer to a ping. */
  Pong: 0x19,
  /** Connection close. */
  Close: 0x1a,
  /** Zero padding. */
  Padding: 0x1b,
  /** Fragments of a video frame the receiver asks to have sent again. */
  Nack: 0x1c,
} as const;
/** A frame type code, one of the values of {@linkcode FrameType}. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/** Channels an ACK frame can acknowledge: the frame type of the reliable channel. */
export const AckChannel = { Input: 0x12, Control: 0x13 } as const;
/** A reliable channel code, one of the values of {@linkcode AckChannel}. */
export type AckChannel = typeof AckChannel[keyof typeof AckChannel];

/** FEC schemes of a FEC_PARITY frame. */
export const FecScheme = { Xor: 0, ReedSolomon: 1 } as const;
/** A FEC scheme code, one of the values of {@linkcode FecScheme}. */
export type FecScheme = typeof FecScheme[keyof typeof FecScheme];

/** Reasons of a KEYFRAME_REQUEST frame. */
export const KeyframeReason = {
  Loss: 0,
  DecoderError: 1,
  NewViewer: 2,
} as const;
/** A keyframe request reason, one of the values of {@linkcode KeyframeReason}. */
export type KeyframeReason = typeof KeyframeReason[keyof typeof KeyframeReason];

/** Well-known CLOSE codes (any u16 decodes; unknown codes are treated like `ProtocolError`). */
export const CloseCode = {
  Normal: 0,
  IdleTimeout: 1,
  ProtocolError: 2,
  PeerNotAllowed: 3,
  VersionMismatch: 4,
  /** Local only: the handshake never completed, so there were no keys to send a CLOSE with. */
  HandshakeTimeout: 5,
} as const;

/** VIDEO_FRAGMENT (0x10): one fragment of an encoded video frame. */
export interface VideoFragmentFrame {
  /** Frame tag. */
  type: "video";
  /** Video frame id (u32). */
  frameId: number;
  /** Index of this fragment (u16, < fragmentCount). */
  fragmentIndex: number;
  /** Number of fragments of the frame (u16, ≥ 1). */
  fragmentCount: number;
  /** Capture time in µs, sender clock (< 2^53). */
  captureTimeUs: number;
  /** Flags bit 0: the frame is a keyframe. */
  keyframe: boolean;
  /** Fragment payload (≤ 65535 bytes). */
  data: Uint8Array;
}

/** AUDIO (0x11): one encoded audio packet. */
export interface AudioFrame {
  /** Frame tag. */
  type: "audio";
  /** Audio sequence number (u32). */
  sequence: number;
  /** Capture time in µs, sender clock (< 2^53). */
  captureTimeUs: number;
  /** Encoded audio (≤ 65535 bytes). */
  data: Uint8Array;
}

/** INPUT (0x12): a message on the reliable input channel. */
export interface InputFrame {
  /** Frame tag. */
  type: "input";
  /** Channel sequence number (u32). */
  sequence: number;
  /** Message bytes (≤ 65535). */
  data: Uint8Array;
}

/** CONTROL (0x13): a message on the reliable control channel. */
export interface ControlFrame {
  /** Frame tag. */
  type: "control";
  /** Channel sequence number (u32). */
  sequence: number;
  /** Message bytes (≤ 65535). */
  data: Uint8Array;
}

/** ACK (0x14): cumulative + selective acknowledgement of a reliable channel. */
export interface AckFrame {
  /** Frame tag. */
  type: "ack";
  /** The acknowledged channel: 0x12 input or 0x13 control (the channel's frame type). */
  channel: AckChannel;
  /** Every sequence below this was received (u32). */
  nextExpected: number;
  /** Bit i set: sequence nextExpected + 1 + i was received (u32). */
  bitmap: number;
}

/** FEC_PARITY (0x15): one parity shard protecting a group of video fragments. */
export interface FecParityFrame {
  /** Frame tag. */
  type: "fec";
  /** FEC scheme (0 XOR, 1 Reed-Solomon). */
  scheme: FecScheme;
  /** Video frame id the group belongs to (u32). */
  frameId: number;
  /** Fragment index of the first protected fragment (u16). */
  groupFirstIndex: number;
  /** Number of protected data fragments (u8, ≥ 1). */
  dataCount: number;
  /** Index of this parity shard in the group (u8, < parityCount). */
  parityIndex: number;
  /** Number of parity shards in the group (u8, ≥ 1). */
  parityCount: number;
  /**
   * The frame's fragment count, capture time and keyframe flag, as its
   * fragments carry them: a frame whose fragments were all lost is rebuilt
   * from parity alone (u16 ≥ groupFirstIndex + dataCount; < 2^53; flags bit 0).
   */
  fragmentCount: number;
  /** Capture time in µs, sender clock (< 2^53), as the frame's fragments carry it. */
  captureTimeUs: number;
  /** Whether the protected frame is a keyframe, as its fragments say. */
  keyframe: boolean;
  /** Length the protected fragments are padded to (u16). */
  protectedLength: number;
  /** Parity bytes (≤ 65535). */
  data: Uint8Array;
}

/** One received packet listed in a FEEDBACK frame. */
export interface FeedbackEntry {
  /** Packet number minus the base packet number (u16). */
  packetNumberDelta: number;
  /** Receive time minus the base receive time, in µs (u32). */
  receiveTimeDeltaUs: number;
}

/** FEEDBACK (0x16): receive times of recent packets, for congestion control. */
export interface FeedbackFrame {
  /** Frame tag. */
  type: "feedback";
  /** Cumulative number of packets the receiver counts as lost (u32). */
  lostTotal: number;
  /** Base packet number (< 2^53). */
  basePacketNumber: number;
  /** Base receive time in µs, receiver clock (< 2^53). */
  baseReceiveTimeUs: number;
  /** Received packets, strictly increasing `packetNumberDelta` (≤ 65535 entries). */
  entries: FeedbackEntry[];
}

/** KEYFRAME_REQUEST (0x17). */
export interface KeyframeRequestFrame {
  /** Frame tag. */
  type: "keyframe-request";
  /** Id of the last frame the receiver completed (u32). */
  lastCompleteFrameId: number;
  /** Why the keyframe is needed. */
  reason: KeyframeReason;
}

/** NACK (0x1C): fragments of one video frame that neither arrived nor could be rebuilt. */
export interface NackFrame {
  /** Frame tag. */
  type: "nack";
  /** The video frame (u32). */
  frameId: number;
  /** Missing fragment indexes, strictly increasing, 1..255 of them (u16 each). */
  indexes: number[];
}

/** PING (0x18). */
export interface PingFrame {
  /** Frame tag. */
  type: "ping";
  /** Ping id (u32), echoed in the PONG. */
  pingId: number;
  /** Send time in µs, sender clock (< 2^53). */
  sendTimeUs: number;
}

/** PONG (0x19). */
export interface PongFrame {
  /** Frame tag. */
  type: "pong";
  /** Id of the PING answered (u32). */
  pingId: number;
  /** The PING's send time, echoed (< 2^53). */
  pingSendTimeUs: number;
  /** Responder clock when it replied, in µs (< 2^53). */
  responderTimeUs: number;
}

/** CLOSE (0x1A). */
export interface CloseFrame {
  /** Frame tag. */
  type: "close";
  /** Close code (u16), see {@linkcode CloseCode}. */
  code: number;
  /** Human-readable reason, at most 255 UTF-8 bytes. */
  reason: string;
}

/** PADDING (0x1B): `length` zero bytes. */
export interface PaddingFrame {
  /** Frame tag. */
  type: "padding";
  /** Number of zero bytes after the length field (u16). */
  length: number;
}

/** Any RIFT v1 frame. */
export type Frame =
  | VideoFragmentFrame
  | AudioFrame
  | InputFrame
  | ControlFrame
  | AckFrame
  | FecParityFrame
  | FeedbackFrame
  | KeyframeRequestFrame
  | NackFrame
  | PingFrame
  | PongFrame
  | CloseFrame
  | PaddingFrame;

/** Bytes of a VIDEO_FRAGMENT frame before its data (type byte included). */
export const VIDEO_FRAGMENT_OVERHEAD = 20;
const AUDIO_OVERHEAD = 15;
const CHANNEL_OVERHEAD = 7;
const ACK_LENGTH = 10;
/** Bytes of a FEC_PARITY frame before its data (type byte included). */
const FEC_OVERHEAD = 26;
/** A protected shard is a fragment's payload behind its u16 length (core/fec/video.ts). */
const FEC_SHARD_PREFIX = 2;
const FEEDBACK_OVERHEAD = 23;
const FEEDBACK_ENTRY = 6;
const KEYFRAME_REQUEST_LENGTH = 6;
const NACK_OVERHEAD = 6;
const NACK_ENTRY = 2;
const PING_LENGTH = 13;
const PONG_LENGTH = 21;
const CLOSE_OVERHEAD = 4;
const PADDING_OVERHEAD = 3;

/**
 * Largest video payload one packet of `maxDatagram` bytes carries: budget −
 * header − tag − the larger of a fragment's header and a parity frame's (whose
 * shard also holds the payload's length), so the parity of full fragments fits
 * one packet too.
 */
export function maxVideoPayload(
  maxDatagram: number = DEFAULT_MAX_DATAGRAM,
): number {
  return maxDatagram - HEADER_LENGTH - AEAD_TAG_LENGTH -
    Math.max(VIDEO_FRAGMENT_OVERHEAD, FEC_OVERHEAD + FEC_SHARD_PREFIX);
}

// ---------------------------------------------------------------------------
// Encoding

function check(cond: boolean, what: string, v: unknown): void {
  if (!cond) throw new RangeError(`${what} out of range: ${String(v)}`);
}
function u8(v: number, what: string): void {
  check(Number.isInteger(v) && v >= 0 && v <= 0xff, what, v);
}
function u16(v: number, what: string): void {
  check(Number.isInteger(v) && v >= 0 && v <= 0xffff, what, v);
}
function u32(v: number, what: string): void {
  check(Number.isInteger(v) && v >= 0 && v <= 0xffffffff, what, v);
}
function u53(v: number, what: string): void {
  check(Number.isInteger(v) && v >= 0 && v <= MAX_U53, what, v);
}
function dataLen(d: Uint8Array, what: string): number {
  if (!(d instanceof Uint8Array) || d.length > 0xffff) {
    throw new RangeError(`${what} length out of range: ${d?.length}`);
  }
  return d.length;
}

/** UTF-8 length of `s` exactly as `TextEncoder` would produce it; -1 if it has lone surrogates. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return -1;
      n += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return -1;
    else n += 3;
  }
  return n;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Encoded size of `frame` in bytes, type byte included.
 *
 * @throws {RangeError} if a length field would overflow (data over 65535
 * bytes, a reason over 255 UTF-8 bytes, too many feedback entries).
 */
export function encodedFrameLength(frame: Frame): number {
  switch (frame.type) {
    case "video":
      return VIDEO_FRAGMENT_OVERHEAD + dataLen(frame.data, "video data");
    case "audio":
      return AUDIO_OVERHEAD + dataLen(frame.data, "audio data");
    case "input":
    case "control":
      return CHANNEL_OVERHEAD + dataLen(frame.data, "channel data");
    case "ack":
      return ACK_LENGTH;
    case "fec":
      return FEC_OVERHEAD + dataLen(frame.data, "fec data");
    case "feedback":
      u16(frame.entries.length, "feedback count");
      return FEEDBACK_OVERHEAD + FEEDBACK_ENTRY * frame.entries.length;
    case "keyframe-request":
      return KEYFRAME_REQUEST_LENGTH;
    case "nack":
      check(
        Array.isArray(frame.indexes) && frame.indexes.length >= 1 && frame.indexes.length <= 255,
        "nack count",
        frame.indexes?.length,
      );
      return NACK_OVERHEAD + NACK_ENTRY * frame.indexes.length;
    case "ping":
      return PING_LENGTH;
    case "pong":
      return PONG_LENGTH;
    case "close": {
      const n = utf8Length(frame.reason);
      check(n >= 0, "close reason (lone surrogate)", frame.reason);
      u8(n, "close reason UTF-8 length");
      return CLOSE_OVERHEAD + n;
    }
    case "padding":
      u16(frame.length, "padding length");
      return PADDING_OVERHEAD + frame.length;
    default:
      throw new RangeError(
        `unknown frame type ${(frame as { type: unknown }).type}`,
      );
  }
}

function setU64(view: DataView, at: number, v: number): void {
  view.setUint32(at, Math.floor(v / 0x100000000));
  view.setUint32(at + 4, v >>> 0);
}

/** Writes one frame at `p` (room already checked); returns the offset after it. */
function writeFrame(
  f: Frame,
  out: Uint8Array,
  view: DataView,
  p: number,
): number {
  switch (f.type) {
    case "video": {
      u32(f.frameId, "frameId");
      u16(f.fragmentCount, "fragmentCount");
      check(f.fragmentCount >= 1, "fragmentCount", 0);
      u16(f.fragmentIndex, "fragmentIndex");
      check(
        f.fragmentIndex < f.fragmentCount,
        "fragmentIndex",
        f.fragmentIndex,
      );
      u53(f.captureTimeUs, "captureTimeUs");
      view.setUint8(p, FrameType.VideoFragment);
      view.setUint32(p + 1, f.frameId);
      view.setUint16(p + 5, f.fragmentIndex);
      view.setUint16(p + 7, f.fragmentCount);
      setU64(view, p + 9, f.captureTimeUs);
      view.setUint8(p + 17, f.keyframe ? 1 : 0);
      view.setUint16(p + 18, f.data.length);
      out.set(f.data, p + 20);
      return p + 20 + f.data.length;
    }
    case "audio":
      u32(f.sequence, "audio sequence");
      u53(f.captureTimeUs, "captureTimeUs");
      view.setUint8(p, FrameType.Audio);
      view.setUint32(p + 1, f.sequence);
      setU64(view, p + 5, f.captureTimeUs);
      view.setUint16(p + 13, f.data.length);
      out.set(f.data, p + 15);
      return p + 15 + f.data.length;
    case "input":
    case "control":
      u32(f.sequence, "channel sequence");
      view.setUint8(
        p,
        f.type === "input" ? FrameType.Input : FrameType.Control,
      );
      view.setUint32(p + 1, f.sequence);
      view.setUint16(p + 5, f.data.length);
      out.set(f.data, p + 7);
      return p + 7 + f.data.length;
    case "ack":
      check(
        f.channel === AckChannel.Input || f.channel === AckChannel.Control,
        "ack channel",
        f.channel,
      );
      u32(f.nextExpected, "nextExpected");
      u32(f.bitmap, "bitmap");
      view.setUint8(p, FrameType.Ack);
      view.setUint8(p + 1, f.channel);
      view.setUint32(p + 2, f.nextExpected);
      view.setUint32(p + 6, f.bitmap);
      return p + 10;
    case "fec":
      check(
        f.scheme === FecScheme.Xor || f.scheme === FecScheme.ReedSolomon,
        "fec scheme",
        f.scheme,
      );
      u32(f.frameId, "frameId");
      u16(f.groupFirstIndex, "groupFirstIndex");
      u8(f.dataCount, "dataCount");
      check(f.dataCount >= 1, "dataCount", f.dataCount);
      u8(f.parityCount, "parityCount");
      check(f.parityCount >= 1, "parityCount", f.parityCount);
      u8(f.parityIndex, "parityIndex");
      check(f.parityIndex < f.parityCount, "parityIndex", f.parityIndex);
      u16(f.fragmentCount, "fec fragmentCount");
      check(
        f.groupFirstIndex + f.dataCount <= f.fragmentCount,
        "fec group end (past fragmentCount)",
        f.groupFirstIndex + f.dataCount,
      );
      u53(f.captureTimeUs, "fec captureTimeUs");
      u16(f.protectedLength, "protectedLength");
      view.setUint8(p, FrameType.FecParity);
      view.setUint8(p + 1, f.scheme);
      view.setUint32(p + 2, f.frameId);
      view.setUint16(p + 6, f.groupFirstIndex);
      view.setUint8(p + 8, f.dataCount);
      view.setUint8(p + 9, f.parityIndex);
      view.setUint8(p + 10, f.parityCount);
      view.setUint16(p + 11, f.fragmentCount);
      setU64(view, p + 13, f.captureTimeUs);
      view.setUint8(p + 21, f.keyframe ? 1 : 0);
      view.setUint16(p + 22, f.protectedLength);
      view.setUint16(p + 24, f.data.length);
      out.set(f.data, p + FEC_OVERHEAD);
      return p + FEC_OVERHEAD + f.data.length;
    case "feedback": {
      u32(f.lostTotal, "lostTotal");
      u53(f.basePacketNumber, "basePacketNumber");
      u53(f.baseReceiveTimeUs, "baseReceiveTimeUs");
      const n = f.entries.length;
      view.setUint8(p, FrameType.Feedback);
      view.setUint32(p + 1, f.lostTotal);
      setU64(view, p + 5, f.basePacketNumber);
      setU64(view, p + 13, f.baseReceiveTimeUs);
      view.setUint16(p + 21, n);
      let q = p + 23;
      let prev = -1;
      for (let i = 0; i < n; i++) {
        const e = f.entries[i];
        u16(e.packetNumberDelta, "packetNumberDelta");
        check(
          e.packetNumberDelta > prev,
          "packetNumberDelta (not increasing)",
          e.packetNumberDelta,
        );
        u32(e.receiveTimeDeltaUs, "receiveTimeDeltaUs");
        prev = e.packetNumberDelta;
        view.setUint16(q, e.packetNumberDelta);
        view.setUint32(q + 2, e.receiveTimeDeltaUs);
        q += FEEDBACK_ENTRY;
      }
      check(
        n === 0 || f.basePacketNumber + prev <= MAX_U53,
        "basePacketNumber + delta",
        prev,
      );
      return q;
    }
    case "keyframe-request":
      u32(f.lastCompleteFrameId, "lastCompleteFrameId");
      check(
        f.reason === 0 || f.reason === 1 || f.reason === 2,
        "keyframe reason",
        f.reason,
      );
      view.setUint8(p, FrameType.KeyframeRequest);
      view.setUint32(p + 1, f.lastCompleteFrameId);
      view.setUint8(p + 5, f.reason);
      return p + 6;
    case "nack": {
      u32(f.frameId, "nack frameId");
      view.setUint8(p, FrameType.Nack);
      view.setUint32(p + 1, f.frameId);
      view.setUint8(p + 5, f.indexes.length);
      let prev = -1;
      let q = p + NACK_OVERHEAD;
      for (const index of f.indexes) {
        u16(index, "nack index");
        check(index > prev, "nack indexes strictly increasing", index);
        prev = index;
        view.setUint16(q, index);
        q += NACK_ENTRY;
      }
      return q;
    }
    case "ping":
      u32(f.pingId, "pingId");
      u53(f.sendTimeUs, "sendTimeUs");
      view.setUint8(p, FrameType.Ping);
      view.setUint32(p + 1, f.pingId);
      setU64(view, p + 5, f.sendTimeUs);
      return p + 13;
    case "pong":
      u32(f.pingId, "pingId");
      u53(f.pingSendTimeUs, "pingSendTimeUs");
      u53(f.responderTimeUs, "responderTimeUs");
      view.setUint8(p, FrameType.Pong);
      view.setUint32(p + 1, f.pingId);
      setU64(view, p + 5, f.pingSendTimeUs);
      setU64(view, p + 13, f.responderTimeUs);
      return p + 21;
    case "close": {
      u16(f.code, "close code");
      view.setUint8(p, FrameType.Close);
      view.setUint16(p + 1, f.code);
      const { written } = encoder.encodeInto(
        f.reason,
        out.subarray(p + 4, p + 4 + 255),
      );
      view.setUint8(p + 3, written);
      return p + 4 + written;
    }
    case "padding":
      view.setUint8(p, FrameType.Padding);
      view.setUint16(p + 1, f.length);
      out.fill(0, p + 3, p + 3 + f.length);
      return p + 3 + f.length;
  }
}

/**
 * Encodes `frames` back to back into `out` starting at `offset` and returns
 * the offset one past the last byte written. Nothing is allocated besides one
 * `DataView`.
 *
 * @throws {RangeError} for an empty frame list, a field out of range, or
 * when `out` has no room for the frames (then `out` may be partly written).
 */
export function encodeFramesInto(
  frames: readonly Frame[],
  out: Uint8Array,
  offset: number,
): number {
  if (frames.length === 0) {
    throw new RangeError("a packet carries at least one frame");
  }
  check(
    Number.isInteger(offset) && offset >= 0 && offset <= out.length,
    "offset",
    offset,
  );
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let p = offset;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    const len = encodedFrameLength(f);
    if (p + len > out.length) {
      throw new RangeError(
        `no room for a ${len}-byte ${f.type} frame at offset ${p}`,
      );
    }
    p = writeFrame(f, out, view, p);
  }
  return p;
}

/**
 * Encodes `frames` back to back into a fresh array.
 *
 * @throws {RangeError} for an empty frame list or a field out of range.
 */
export function encodeFrames(frames: readonly Frame[]): Uint8Array {
  let total = 0;
  for (let i = 0; i < frames.length; i++) {
    total += encodedFrameLength(frames[i]);
  }
  const out = new Uint8Array(total);
  encodeFramesInto(frames, out, 0);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

function fail(
  kind: WireErrorKind,
  detail: string,
): { ok: false; error: WireError } {
  return err({ kind, detail });
}

/** Reads a u64 that must be below 2^53; -1 if it is not. */
function getU53(view: DataView, at: number): number {
  const hi = view.getUint32(at);
  if (hi > 0x1fffff) return -1;
  return hi * 0x100000000 + view.getUint32(at + 4);
}

function truncated(name: string, at: number): { ok: false; error: WireError } {
  return fail("Truncated", `${name} frame at offset ${at} runs past the end`);
}

/**
 * Decodes the plaintext of a SEALED packet into its frames. Never throws.
 * `data` fields are subarray views of `plaintext`: copy them before reusing
 * the buffer. Errors: `Malformed` for zero frames or a value out of range,
 * `UnknownFrameType` for an unknown type byte, `Truncated` when a frame runs
 * past the end.
 */
export function decodeFrames(
  plaintext: Uint8Array,
): Result<Frame[], WireError> {
  const len = plaintext.length;
  if (len === 0) {
    return fail("Malformed", "a packet carries at least one frame");
  }
  const view = new DataView(
    plaintext.buffer,
    plaintext.byteOffset,
    plaintext.byteLength,
  );
  const frames: Frame[] = [];
  let p = 0;
  while (p < len) {
    const t = plaintext[p];
    const rem = len - p;
    switch (t) {
      case FrameType.VideoFragment: {
        if (rem < VIDEO_FRAGMENT_OVERHEAD) {
          return truncated("VIDEO_FRAGMENT", p);
        }
        const n = view.getUint16(p + 18);
        if (rem < VIDEO_FRAGMENT_OVERHEAD + n) {
          return truncated("VIDEO_FRAGMENT", p);
        }
        const fragmentIndex = view.getUint16(p + 5);
        const fragmentCount = view.getUint16(p + 7);
        if (fragmentCount === 0) {
          return fail("Malformed", "VIDEO_FRAGMENT with fragment_count 0");
        }
        if (fragmentIndex >= fragmentCount) {
          return fail(
            "Malformed",
            `fragment_index ${fragmentIndex} ≥ fragment_count ${fragmentCount}`,
          );
        }
        const captureTimeUs = getU53(view, p + 9);
        if (captureTimeUs < 0) {
          return fail("Malformed", "capture_time_us ≥ 2^53");
        }
        frames.push({
          type: "video",
          frameId: view.getUint32(p + 1),
          fragmentIndex,
          fragmentCount,
          captureTimeUs,
          keyframe: (plaintext[p + 17] & 1) !== 0,
          data: plaintext.subarray(p + 20, p + 20 + n),
        });
        p += VIDEO_FRAGMENT_OVERHEAD + n;
        break;
      }
      case FrameType.Audio: {
        if (rem < AUDIO_OVERHEAD) return truncated("AUDIO", p);
        const n = view.getUint16(p + 13);
        if (rem < AUDIO_OVERHEAD + n) return truncated("AUDIO", p);
        const captureTimeUs = getU53(view, p + 5);
        if (captureTimeUs < 0) {
          return fail("Malformed", "capture_time_us ≥ 2^53");
        }
        frames.push({
          type: "audio",
          sequence: view.getUint32(p + 1),
          captureTimeUs,
          data: plaintext.subarray(p + 15, p + 15 + n),
        });
        p += AUDIO_OVERHEAD + n;
        break;
      }
      case FrameType.Input:
      case FrameType.Control: {
        if (rem < CHANNEL_OVERHEAD) {
          return truncated(t === FrameType.Input ? "INPUT" : "CONTROL", p);
        }
        const n = view.getUint16(p + 5);
        if (rem < CHANNEL_OVERHEAD + n) {
          return truncated(t === FrameType.Input ? "INPUT" : "CONTROL", p);
        }
        frames.push({
          type: t === FrameType.Input ? "input" : "control",
          sequence: view.getUint32(p + 1),
          data: plaintext.subarray(p + 7, p + 7 + n),
        });
        p += CHANNEL_OVERHEAD + n;
        break;
      }
      case FrameType.Ack: {
        if (rem < ACK_LENGTH) return truncated("ACK", p);
        const c = plaintext[p + 1];
        if (c !== FrameType.Input && c !== FrameType.Control) {
          return fail(
            "Malformed",
            `ACK for unknown channel 0x${c.toString(16)}`,
          );
        }
        frames.push({
          type: "ack",
          channel: c,
          nextExpected: view.getUint32(p + 2),
          bitmap: view.getUint32(p + 6),
        });
        p += ACK_LENGTH;
        break;
      }
      case FrameType.FecParity: {
        if (rem < FEC_OVERHEAD) return truncated("FEC_PARITY", p);
        const n = view.getUint16(p + 24);
        if (rem < FEC_OVERHEAD + n) return truncated("FEC_PARITY", p);
        const scheme = plaintext[p + 1];
        if (scheme !== FecScheme.Xor && scheme !== FecScheme.ReedSolomon) {
          return fail("Malformed", `unknown FEC scheme ${scheme}`);
        }
        const dataCount = plaintext[p + 8];
        const parityIndex = plaintext[p + 9];
        const parityCount = plaintext[p + 10];
        if (
          dataCount === 0 || parityCount === 0 || parityIndex >= parityCount
        ) {
          return fail("Malformed", "FEC_PARITY counts out of range");
        }
        const groupFirstIndex = view.getUint16(p + 6);
        const fragmentCount = view.getUint16(p + 11);
        if (groupFirstIndex + dataCount > fragmentCount) {
          return fail(
            "Malformed",
            `FEC_PARITY group ends at ${
              groupFirstIndex + dataCount
            } > fragment_count ${fragmentCount}`,
          );
        }
        const captureTimeUs = getU53(view, p + 13);
        if (captureTimeUs < 0) return fail("Malformed", "FEC_PARITY capture_time_us ≥ 2^53");
        frames.push({
          type: "fec",
          scheme,
          frameId: view.getUint32(p + 2),
          groupFirstIndex,
          dataCount,
          parityIndex,
          parityCount,
          fragmentCount,
          captureTimeUs,
          keyframe: (plaintext[p + 21] & 1) !== 0,
          protectedLength: view.getUint16(p + 22),
          data: plaintext.subarray(p + FEC_OVERHEAD, p + FEC_OVERHEAD + n),
        });
        p += FEC_OVERHEAD + n;
        break;
      }
      case FrameType.Feedback: {
        if (rem < FEEDBACK_OVERHEAD) return truncated("FEEDBACK", p);
        const count = view.getUint16(p + 21);
        if (rem < FEEDBACK_OVERHEAD + FEEDBACK_ENTRY * count) {
          return truncated("FEEDBACK", p);
        }
        const basePacketNumber = getU53(view, p + 5);
        const baseReceiveTimeUs = getU53(view, p + 13);
        if (basePacketNumber < 0 || baseReceiveTimeUs < 0) {
          return fail("Malformed", "FEEDBACK base value ≥ 2^53");
        }
        const entries: FeedbackEntry[] = new Array(count);
        let q = p + FEEDBACK_OVERHEAD;
        let prev = -1;
        for (let i = 0; i < count; i++) {
          const packetNumberDelta = view.getUint16(q);
          if (packetNumberDelta <= prev) {
            return fail(
              "Malformed",
              "FEEDBACK packet number deltas not strictly increasing",
            );
          }
          prev = packetNumberDelta;
          entries[i] = {
            packetNumberDelta,
            receiveTimeDeltaUs: view.getUint32(q + 2),
          };
          q += FEEDBACK_ENTRY;
        }
        if (basePacketNumber + prev > MAX_U53) {
          return fail("Malformed", "FEEDBACK packet number ≥ 2^53");
        }
        frames.push({
          type: "feedback",
          lostTotal: view.getUint32(p + 1),
          basePacketNumber,
          baseReceiveTimeUs,
          entries,
        });
        p = q;
        break;
      }
      case FrameType.KeyframeRequest: {
        if (rem < KEYFRAME_REQUEST_LENGTH) {
          return truncated("KEYFRAME_REQUEST", p);
        }
        const reason = plaintext[p + 5];
        if (reason > KeyframeReason.NewViewer) {
          return fail("Malformed", `unknown keyframe request reason ${reason}`);
        }
        frames.push({
          type: "keyframe-request",
          lastCompleteFrameId: view.getUint32(p + 1),
          reason: reason as KeyframeReason,
        });
        p += KEYFRAME_REQUEST_LENGTH;
        break;
      }
      case FrameType.Nack: {
        if (rem < NACK_OVERHEAD) return truncated("NACK", p);
        const count = plaintext[p + 5];
        if (count === 0) return fail("Malformed", "NACK without indexes");
        if (rem < NACK_OVERHEAD + NACK_ENTRY * count) return truncated("NACK", p);
        const indexes: number[] = new Array(count);
        let prev = -1;
        for (let i = 0; i < count; i++) {
          const index = view.getUint16(p + NACK_OVERHEAD + NACK_ENTRY * i);
          if (index <= prev) return fail("Malformed", "NACK indexes not strictly increasing");
          indexes[i] = prev = index;
        }
        frames.push({ type: "nack", frameId: view.getUint32(p + 1), indexes });
        p += NACK_OVERHEAD + NACK_ENTRY * count;
        break;
      }
      case FrameType.Ping: {
        if (rem < PING_LENGTH) return truncated("PING", p);
        const sendTimeUs = getU53(view, p + 5);
        if (sendTimeUs < 0) {
          return fail("Malformed", "PING send_time_us ≥ 2^53");
        }
        frames.push({
          type: "ping",
          pingId: view.getUint32(p + 1),
          sendTimeUs,
        });
        p += PING_LENGTH;
        break;
      }
      case FrameType.Pong: {
        if (rem < PONG_LENGTH) return truncated("PONG", p);
        const pingSendTimeUs = getU53(view, p + 5);
        const responderTimeUs = getU53(view, p + 13);
        if (pingSendTimeUs < 0 || responderTimeUs < 0) {
          return fail("Malformed", "PONG timestamp ≥ 2^53");
        }
        frames.push({
          type: "pong",
          pingId: view.getUint32(p + 1),
          pingSendTimeUs,
          responderTimeUs,
        });
        p += PONG_LENGTH;
        break;
      }
      case FrameType.Close: {
        if (rem < CLOSE_OVERHEAD) return truncated("CLOSE", p);
        const n = plaintext[p + 3];
        if (rem < CLOSE_OVERHEAD + n) return truncated("CLOSE", p);
        let reason: string;
        try {
          reason = decoder.decode(plaintext.subarray(p + 4, p + 4 + n));
        } catch {
          return fail("Malformed", "CLOSE reason is not valid UTF-8");
        }
        frames.push({ type: "close", code: view.getUint16(p + 1), reason });
        p += CLOSE_OVERHEAD + n;
        break;
      }
      case FrameType.Padding: {
        if (rem < PADDING_OVERHEAD) return truncated("PADDING", p);
        const n = view.getUint16(p + 1);
        if (rem < PADDING_OVERHEAD + n) return truncated("PADDING", p);
        const end = p + PADDING_OVERHEAD + n;
        for (let i = p + PADDING_OVERHEAD; i < end; i++) {
          if (plaintext[i] !== 0) {
            return fail("Malformed", "non-zero PADDING byte");
          }
        }
        frames.push({ type: "padding", length: n });
        p = end;
        break;
      }
      default:
        return fail(
          "UnknownFrameType",
          `unknown frame type 0x${t.toString(16)} at offset ${p}`,
        );
    }
  }
  return ok(frames);
}
