/**
 * RIFT v1 packet codec: the 16-byte common header, handshake packets,
 * Version Negotiation and the header / sealed-part split of SEALED packets.
 *
 * Sans-IO and allocation-light: decoders read through one `DataView`, return
 * subarray views into the datagram and never throw on any input; encoders
 * throw `RangeError` only for caller bugs (values out of range). The byte
 * layout is specified in `docs/RIFT_SPEC.md`.
 *
 * @module
 */

import { err, ok, type Result } from "./result.ts";

/** The RIFT protocol version this implementation speaks natively. */
export const RIFT_VERSION = 1;
/** Protocol versions this implementation accepts, highest preference last. */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([1]);
/** Length of the common header carried by every RIFT packet. */
export const HEADER_LENGTH = 16;
/** Length of the AEAD tag that ends every SEALED packet. */
export const AEAD_TAG_LENGTH = 16;
/** Default UDP datagram budget; no RIFT packet is ever larger than the budget. */
export const DEFAULT_MAX_DATAGRAM = 1200;
/** Top two bits of byte 0 of every RIFT packet (RFC 7983 / RFC 9443 demux range 192–255). */
export const RIFT_MARKER = 0xc0;
/** Highest version number representable in the 6 low bits of byte 0. */
export const MAX_VERSION = 0x3f;
/** Header flag bit 0: the AEAD key phase of a SEALED packet. */
export const FLAG_KEY_PHASE = 0x01;
/**
 * Header flag bit 1: the packet belongs to the media lane (video, audio, FEC),
 * which has its own keys and packet numbers so a separate thread can seal or
 * open it without touching the session lane (SEALED only).
 */
export const FLAG_MEDIA_LANE = 0x02;
/** Flags a SEALED packet may carry. */
const SEALED_FLAGS = FLAG_KEY_PHASE | FLAG_MEDIA_LANE;
/** Largest packet number (and timestamp) RIFT uses: 2^53 − 1. */
export const MAX_U53: number = Number.MAX_SAFE_INTEGER;

/** Packet types (header byte 1). */
export const PacketType = {
  /** Sent with version 0; lists the versions the sender supports. */
  VersionNegotiation: 0,
  /** Noise_XX message 1 (initiator → responder). */
  HandshakeInit: 1,
  /** Noise_XX message 2 (responder → initiator). */
  HandshakeResponse: 2,
  /** Noise_XX message 3 (initiator → responder). */
  HandshakeFinish: 3,
  /** All post-handshake traffic: AEAD-sealed frames. */
  Sealed: 4,
} as const;
/** A packet type code, one of the values of {@linkcode PacketType}. */
export type PacketType = typeof PacketType[keyof typeof PacketType];

/** The decoded 16-byte common header. */
export interface PacketHeader {
  /** Protocol version (6 bits): 1 for RIFT v1, 0 only for Version Negotiation. */
  version: number;
  /** Packet type. */
  type: PacketType;
  /** Flags (SEALED only): bit 0 key phase, bit 1 media lane. Reserved bits are dropped on decode. */
  flags: number;
  /** The receiver's connection id (u32); 0 in HANDSHAKE_INIT and Version Negotiation. */
  connectionId: number;
  /** Packet number, 0 ≤ n < 2^53. */
  packetNumber: number;
}

/** What went wrong while decoding untrusted bytes. */
export type WireErrorKind =
  | "NotRift"
  | "Truncated"
  | "Oversized"
  | "UnknownVersion"
  | "UnknownType"
  | "UnknownFrameType"
  | "Malformed";

/** A decoding error: a kind to count in metrics, and a human-readable detail. */
export interface WireError {
  /** Error class, stable for metrics and tests. */
  kind: WireErrorKind;
  /** Free-form explanation for logs. */
  detail: string;
}

/** A decoded handshake packet: header plus the opaque Noise message (a view into the datagram). */
export interface HandshakePacket {
  /** The decoded header (type 1, 2 or 3). */
  header: PacketHeader;
  /** The Noise message bytes, a subarray view of the datagram. */
  body: Uint8Array;
}

/** A SEALED packet split into the parts the transport AEAD needs (views into the datagram). */
export interface SealedParts {
  /** The decoded header. */
  header: PacketHeader;
  /** The raw 16 header bytes: the AEAD associated data. */
  headerBytes: Uint8Array;
  /** Ciphertext followed by the 16-byte tag (at least 16 bytes). */
  sealed: Uint8Array;
}

/** Builds a {@linkcode WireError} result. */
export function wireError(
  kind: WireErrorKind,
  detail: string,
): { ok: false; error: WireError } {
  return err({ kind, detail });
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function isU53(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= MAX_U53;
}

/**
 * Whether `datagram` is in RIFT's demultiplexing range: first byte ≥ 0xC0
 * (top two bits `11`). STUN (first byte 0–3) and other protocols sharing the
 * socket fall outside it.
 */
export function isRiftDatagram(datagram: Uint8Array): boolean {
  return datagram.length > 0 && datagram[0] >= RIFT_MARKER;
}

/**
 * Writes the 16-byte header `h` into `out` at `offset` (default: a fresh
 * 16-byte array at offset 0) and returns `out`.
 *
 * @throws {RangeError} if a field is out of range, if flags are set on a
 * non-SEALED packet, or if `out` has no room.
 */
export function encodeHeader(
  h: PacketHeader,
  out: Uint8Array = new Uint8Array(HEADER_LENGTH),
  offset = 0,
): Uint8Array {
  if (
    !Number.isInteger(h.version) || h.version < 0 || h.version > MAX_VERSION
  ) {
    throw new RangeError(`version ${h.version} out of range 0..63`);
  }
  if (!Number.isInteger(h.type) || h.type < 0 || h.type > PacketType.Sealed) {
    throw new RangeError(`unknown packet type ${h.type}`);
  }
  if (
    h.flags !== 0 &&
    !((h.flags & ~SEALED_FLAGS) === 0 && h.type === PacketType.Sealed)
  ) {
    throw new RangeError(`flags ${h.flags} invalid for packet type ${h.type}`);
  }
  if (!isU32(h.connectionId)) {
    throw new RangeError(`connectionId ${h.connectionId} is not a u32`);
  }
  if (!isU53(h.packetNumber)) {
    throw new RangeError(`packetNumber ${h.packetNumber} is not in 0..2^53-1`);
  }
  if (
    !Number.isInteger(offset) || offset < 0 ||
    offset + HEADER_LENGTH > out.length
  ) {
    throw new RangeError(
      `no room for a header at offset ${offset} in ${out.length} bytes`,
    );
  }
  const view = new DataView(out.buffer, out.byteOffset + offset, HEADER_LENGTH);
  view.setUint8(0, RIFT_MARKER | h.version);
  view.setUint8(1, h.type);
  view.setUint8(2, h.flags);
  view.setUint8(3, 0);
  view.setUint32(4, h.connectionId);
  view.setUint32(8, Math.floor(h.packetNumber / 0x100000000));
  view.setUint32(12, h.packetNumber >>> 0);
  return out;
}

/**
 * Decodes and validates the common header of `datagram`. Checks, in order:
 * non-empty (`Truncated`), RIFT marker (`NotRift`), size ≤ `maxDatagram`
 * (`Oversized`), ≥ 16 bytes (`Truncated`), version supported or 0
 * (`UnknownVersion`), type valid for the version (`UnknownType`: version 0
 * only with type 0, v1 with types 1–4), packet number < 2^53 (`Malformed`).
 * Never throws.
 */
export function decodeHeader(
  datagram: Uint8Array,
  maxDatagram: number = DEFAULT_MAX_DATAGRAM,
): Result<PacketHeader, WireError> {
  const len = datagram.length;
  if (len === 0) return wireError("Truncated", "empty datagram");
  const b0 = datagram[0];
  if (b0 < RIFT_MARKER) {
    return wireError(
      "NotRift",
      `first byte 0x${b0.toString(16)} lacks the RIFT marker`,
    );
  }
  if (len > maxDatagram) {
    return wireError(
      "Oversized",
      `${len} bytes exceeds the ${maxDatagram}-byte budget`,
    );
  }
  if (len < HEADER_LENGTH) {
    return wireError(
      "Truncated",
      `${len} bytes is shorter than the 16-byte header`,
    );
  }
  const version = b0 & MAX_VERSION;
  const type = datagram[1];
  if (version === 0) {
    if (type !== PacketType.VersionNegotiation) {
      return wireError(
        "UnknownType",
        `type ${type} is not defined for version 0`,
      );
    }
  } else if (!SUPPORTED_VERSIONS.includes(version)) {
    return wireError("UnknownVersion", `version ${version} is not supported`);
  } else if (type < PacketType.HandshakeInit || type > PacketType.Sealed) {
    return wireError(
      "UnknownType",
      `type ${type} is not defined for version ${version}`,
    );
  }
  const view = new DataView(
    datagram.buffer,
    datagram.byteOffset,
    HEADER_LENGTH,
  );
  const hi = view.getUint32(8);
  if (hi > 0x1fffff) {
    return wireError("Malformed", "packet number is not below 2^53");
  }
  return ok({
    version,
    type: type as PacketType,
    flags: type === PacketType.Sealed ? datagram[2] & SEALED_FLAGS : 0,
    connectionId: view.getUint32(4),
    packetNumber: hi * 0x100000000 + view.getUint32(12),
  });
}

/**
 * Whether a datagram is a SEALED packet of the media lane, read from the raw
 * bytes without decoding, so a dispatcher can route it to the media thread.
 */
export function isMediaLaneDatagram(datagram: Uint8Array): boolean {
  return datagram.length >= HEADER_LENGTH && (datagram[0] & 0xc0) === 0xc0 &&
    datagram[1] === PacketType.Sealed && (datagram[2] & FLAG_MEDIA_LANE) !== 0;
}

/** The AEAD key phase (header flag bit 0) of a SEALED packet; 0 for any other type. */
export function keyPhaseOf(h: PacketHeader): 0 | 1 {
  return h.type === PacketType.Sealed && (h.flags & FLAG_KEY_PHASE) !== 0 ? 1 : 0;
}

/**
 * Encodes a handshake packet (v1 header + opaque Noise message).
 * `connectionId` must be 0 for HANDSHAKE_INIT (the initiator's id travels in
 * the Noise payload).
 *
 * @throws {RangeError} for a non-handshake type, an empty message, a field out
 * of range, or a packet larger than `maxDatagram`.
 */
export function encodeHandshakePacket(
  type: PacketType,
  connectionId: number,
  packetNumber: number,
  noiseMessage: Uint8Array,
  maxDatagram: number = DEFAULT_MAX_DATAGRAM,
): Uint8Array {
  if (
    type !== PacketType.HandshakeInit &&
    type !== PacketType.HandshakeResponse &&
    type !== PacketType.HandshakeFinish
  ) {
    throw new RangeError(`type ${type} is not a handshake packet type`);
  }
  if (type === PacketType.HandshakeInit && connectionId !== 0) {
    throw new RangeError("HANDSHAKE_INIT carries connection id 0");
  }
  if (noiseMessage.length === 0) throw new RangeError("empty Noise message");
  const total = HEADER_LENGTH + noiseMessage.length;
  if (total > maxDatagram) {
    throw new RangeError(
      `handshake packet of ${total} bytes exceeds ${maxDatagram}`,
    );
  }
  const out = new Uint8Array(total);
  encodeHeader(
    { version: RIFT_VERSION, type, flags: 0, connectionId, packetNumber },
    out,
    0,
  );
  out.set(noiseMessage, HEADER_LENGTH);
  return out;
}

/**
 * Decodes a handshake packet (types 1–3). The body is a view into `datagram`.
 * Errors: any {@linkcode decodeHeader} error; `Malformed` for a non-handshake
 * type or a HANDSHAKE_INIT with a non-zero connection id; `Truncated` for an
 * empty body. Never throws.
 */
export function decodeHandshakePacket(
  datagram: Uint8Array,
  maxDatagram: number = DEFAULT_MAX_DATAGRAM,
): Result<HandshakePacket, WireError> {
  const h = decodeHeader(datagram, maxDatagram);
  if (!h.ok) return h;
  const header = h.value;
  if (
    header.type < PacketType.HandshakeInit ||
    header.type > PacketType.HandshakeFinish
  ) {
    return wireError(
      "Malformed",
      `type ${header.type} is not a handshake packet`,
    );
  }
  if (header.type === PacketType.HandshakeInit && header.connectionId !== 0) {
    return wireError(
      "Malformed",
      "HANDSHAKE_INIT with a non-zero connection id",
    );
  }
  if (datagram.length === HEADER_LENGTH) {
    return wireError("Truncated", "handshake packet without a Noise message");
  }
  return ok({ header, body: datagram.subarray(HEADER_LENGTH) });
}

/**
 * Encodes a Version Negotiation packet: header (version 0, type 0,
 * connection id 0, packet number 0) + `count u8 || versions u8[count]`.
 *
 * @throws {RangeError} for an empty list, more than 255 entries, or a version
 * outside 1..63.
 */
export function encodeVersionNegotiation(
  versions: readonly number[],
): Uint8Array {
  if (versions.length === 0 || versions.length > 255) {
    throw new RangeError(
      `version count ${versions.length} out of range 1..255`,
    );
  }
  const out = new Uint8Array(HEADER_LENGTH + 1 + versions.length);
  out[0] = RIFT_MARKER; // version 0; bytes 1..15 stay zero (type 0, cid 0, pn 0)
  out[HEADER_LENGTH] = versions.length;
  for (let i = 0; i < versions.length; i++) {
    const v = versions[i];
    if (!Number.isInteger(v) || v < 1 || v > MAX_VERSION) {
      throw new RangeError(`version ${v} out of range 1..63`);
    }
    out[HEADER_LENGTH + 1 + i] = v;
  }
  return out;
}

/**
 * Decodes a Version Negotiation packet and returns the versions it lists.
 * Errors: any {@linkcode decodeHeader} error; `Malformed` if it is not a VN
 * packet (version 0, type 0), has a non-zero connection id or packet number,
 * lists no version or a version 0, or has trailing bytes; `Truncated` if the
 * list runs past the end. Never throws.
 */
export function decodeVersionNegotiation(
  datagram: Uint8Array,
  maxDatagram: number = DEFAULT_MAX_DATAGRAM,
): Result<number[], WireError> {
  const h = decodeHeader(datagram, maxDatagram);
  if (!h.ok) return h;
  const header = h.value;
  if (header.version !== 0 || header.type !== PacketType.VersionNegotiation) {
    return wireError("Malformed", "not a Version Negotiation packet");
  }
  if (header.connectionId !== 0 || header.packetNumber !== 0) {
    return wireError(
      "Malformed",
      "Version Negotiation with non-zero connection id or packet number",
    );
  }
  if (datagram.length < HEADER_LENGTH + 1) {
    return wireError(
      "Truncated",
      "Version Negotiation without a version count",
    );
  }
  const count = datagram[HEADER_LENGTH];
  if (count === 0) {
    return wireError("Malformed", "Version Negotiation lists no version");
  }
  const end = HEADER_LENGTH + 1 + count;
  if (datagram.length < end) {
    return wireError("Truncated", `version list of ${count} runs past the end`);
  }
  if (datagram.length > end) {
    return wireError("Malformed", "trailing bytes after the version list");
  }
  const versions = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const v = datagram[HEADER_LENGTH + 1 + i];
    if (v < 1 || v > MAX_VERSION) {
      return wireError("Malformed", `listed version ${v} out of range 1..63`);
    }
    versions[i] = v;
  }
  return ok(versions);
}

/**
 * The responder side of version negotiation, as a pure function: if
 * `datagram` is a HANDSHAKE_INIT (byte 1 = 0x01, a version-invariant rule) of a
 * RIFT version not in `supported`, returns the Version Negotiation packet to
 * send back; otherwise `undefined` (drop or process normally). Returns
 * `undefined` too when the answer would be larger than the datagram received
 * (never amplify), or when the datagram is shorter than a header or larger
 * than `maxDatagram`. Never throws.
 */
export function versionNegotiationResponse(
  datagram: Uint8Array,
  supported: readonly number[] = SUPPORTED_VERSIONS,
  maxDatagram: number = DEFAULT_MAX_DATAGRAM,
): Uint8Array | undefined {
  const len = datagram.length;
  if (len < HEADER_LENGTH || len > maxDatagram) return undefined;
  if (datagram[0] < RIFT_MARKER || datagram[1] !== PacketType.HandshakeInit) {
    return undefined;
  }
  const version = datagram[0] & MAX_VERSION;
  if (version === 0 || supported.includes(version)) return undefined;
  if (supported.length === 0 || HEADER_LENGTH + 1 + supported.length > len) {
    return undefined;
  }
  return encodeVersionNegotiation(supported);
}

/** What an initiator does with a Version Negotiation packet it received before its handshake completed. */
export type VersionDecision =
  | { action: "ignore"; reason: string }
  | { action: "retry"; version: number }
  | { action: "fail"; reason: string };

/**
 * The initiator side of version negotiation, as a pure function. `offered`
 * is the decoded VN list, `attempted` the version the initiator used,
 * `supported` its own versions. A VN listing `attempted` is ignored as forged;
 * otherwise the highest common version is retried; with none in common the
 * initiator fails (locally, CLOSE code 4 `VersionMismatch`).
 */
export function negotiateVersion(
  offered: readonly number[],
  attempted: number,
  supported: readonly number[] = SUPPORTED_VERSIONS,
): VersionDecision {
  if (offered.includes(attempted)) {
    return {
      action: "ignore",
      reason: `VN lists the attempted version ${attempted}`,
    };
  }
  let best = -1;
  for (const v of offered) {
    if (v > best && supported.includes(v)) best = v;
  }
  if (best < 0) {
    return {
      action: "fail",
      reason: `no common version in [${offered.join(", ")}]`,
    };
  }
  return { action: "retry", version: best };
}

/**
 * Splits a SEALED packet into its header, the raw header bytes (AEAD
 * associated data) and the sealed part (ciphertext + tag), all views into
 * `datagram`. Errors: any {@linkcode decodeHeader} error; `Malformed` for a
 * packet that is not SEALED; `Truncated` when the sealed part is shorter
 * than the 16-byte tag. Never throws.
 */
export function splitSealed(
  datagram: Uint8Array,
  maxDatagram: number = DEFAULT_MAX_DATAGRAM,
): Result<SealedParts, WireError> {
  const h = decodeHeader(datagram, maxDatagram);
  if (!h.ok) return h;
  if (h.value.type !== PacketType.Sealed) {
    return wireError("Malformed", `type ${h.value.type} is not SEALED`);
  }
  if (datagram.length < HEADER_LENGTH + AEAD_TAG_LENGTH) {
    return wireError("Truncated", "sealed part shorter than the AEAD tag");
  }
  return ok({
    header: h.value,
    headerBytes: datagram.subarray(0, HEADER_LENGTH),
    sealed: datagram.subarray(HEADER_LENGTH),
  });
}
