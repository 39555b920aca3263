/**
 * STUN message codec (RFC 8489), with the RFC 5780 NAT-discovery attributes
 * and the ICE attributes of RFC 8445 §16.
 *
 * Sans-IO and synchronous. {@linkcode decodeStun} never throws: every way a
 * datagram can be wrong is a {@linkcode StunError} with a kind to count.
 * {@linkcode encodeStun} throws `RangeError` only for caller bugs (a value
 * out of range). MESSAGE-INTEGRITY is HMAC-SHA1 with a short-term
 * credential key (RFC 8489 §9.1); FINGERPRINT is CRC-32 xor 0x5354554e.
 * The byte layout is described in `docs/STUN.md`.
 *
 * @module
 */

import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { err, ok, type Result } from "../result.ts";
import { crc32 } from "./crc32.ts";
import { formatIp, type IpFamily, parseIp, type TransportAddress } from "./ip.ts";

/** The fixed value in bytes 4–7 of every RFC 5389/8489 STUN message. */
export const MAGIC_COOKIE = 0x2112a442;
/** Length of the STUN message header. */
export const STUN_HEADER_LENGTH = 20;
/** Length of a transaction id. */
export const TRANSACTION_ID_LENGTH = 12;
/** What FINGERPRINT's CRC-32 is xor-ed with ("STUN" in ASCII). */
export const FINGERPRINT_XOR = 0x5354554e;

/** The two class bits of the message type. */
export const StunClass = {
  /** A request: expects a success or error response. */
  Request: 0,
  /** An indication: no response. */
  Indication: 1,
  /** A success response. */
  SuccessResponse: 2,
  /** An error response (carries ERROR-CODE). */
  ErrorResponse: 3,
} as const;
/** A message class, one of the values of {@linkcode StunClass}. */
export type StunClass = typeof StunClass[keyof typeof StunClass];

/** STUN methods used here (12 bits). */
export const StunMethod = {
  /** Binding: the only method of plain STUN. */
  Binding: 0x001,
} as const;

/** Attribute type codes. Codes below 0x8000 are comprehension-required. */
export const StunAttr = {
  MappedAddress: 0x0001,
  /** RFC 5780 §7.2. */
  ChangeRequest: 0x0003,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  XorMappedAddress: 0x0020,
  /** RFC 8445 §16.1. */
  Priority: 0x0024,
  /** RFC 8445 §16.1. */
  UseCandidate: 0x0025,
  /** RFC 5780 §7.6. */
  Padding: 0x0026,
  /** RFC 5780 §7.5. */
  ResponsePort: 0x0027,
  Software: 0x8022,
  Fingerprint: 0x8028,
  /** RFC 8445 §16.1. */
  IceControlled: 0x8029,
  /** RFC 8445 §16.1. */
  IceControlling: 0x802a,
  /** RFC 5780 §7.3. */
  ResponseOrigin: 0x802b,
  /** RFC 5780 §7.4. */
  OtherAddress: 0x802c,
} as const;

/** A decoded (or to-be-encoded) attribute, other than MESSAGE-INTEGRITY and FINGERPRINT. */
export type StunAttribute =
  | { kind: "MappedAddress"; address: TransportAddress }
  | { kind: "XorMappedAddress"; address: TransportAddress }
  | { kind: "OtherAddress"; address: TransportAddress }
  | { kind: "ResponseOrigin"; address: TransportAddress }
  | { kind: "Username"; value: string }
  | { kind: "Software"; value: string }
  | { kind: "ErrorCode"; code: number; reason: string }
  | { kind: "UnknownAttributes"; types: number[] }
  | { kind: "ChangeRequest"; changeIp: boolean; changePort: boolean }
  /** RFC 5780 RESPONSE-PORT: answer to this port of the source IP. */
  | { kind: "ResponsePort"; port: number }
  /** RFC 5780 PADDING: `length` bytes of filler (zeros on encode; content ignored on decode). */
  | { kind: "Padding"; length: number }
  | { kind: "Priority"; priority: number }
  | { kind: "UseCandidate" }
  | { kind: "IceControlling"; tieBreaker: bigint }
  | { kind: "IceControlled"; tieBreaker: bigint }
  /** Any other attribute, kept as its type code and value bytes. */
  | { kind: "Raw"; type: number; value: Uint8Array };

/** The kind names of {@linkcode StunAttribute}. */
export type StunAttributeKind = StunAttribute["kind"];

/** A STUN message: header fields and attributes. */
export interface StunMessage {
  /** Method, 12 bits ({@linkcode StunMethod}). */
  method: number;
  /** Class ({@linkcode StunClass}). */
  messageClass: StunClass;
  /** 96-bit transaction id. */
  transactionId: Uint8Array;
  /** Attributes in wire order (MESSAGE-INTEGRITY and FINGERPRINT excluded). */
  attributes: StunAttribute[];
}

/** A decoded message plus what the decoder learned about its integrity attributes. */
export interface DecodedStun extends StunMessage {
  /**
   * Byte offset of the MESSAGE-INTEGRITY attribute, or -1 when absent. Check
   * it with {@linkcode verifyIntegrity}; attributes after it (other than
   * FINGERPRINT) were ignored as RFC 8489 §14.5 requires.
   */
  integrityOffset: number;
  /** Whether a FINGERPRINT was present (it was verified; a bad one is an error). */
  fingerprint: boolean;
  /** Comprehension-required attribute types (< 0x8000) this decoder does not know. */
  unknownRequired: number[];
}

/** What went wrong while decoding untrusted bytes. */
export type StunErrorKind =
  /** Shorter than the 20-byte header. */
  | "Truncated"
  /** First two bits not zero: not a STUN packet (RFC 7983 range 0–3). */
  | "NotStun"
  /** Bytes 4–7 are not the magic cookie (e.g. classic RFC 3489 STUN). */
  | "BadMagicCookie"
  /** Header length not a multiple of 4, or not equal to the bytes that follow. */
  | "BadLength"
  /** An attribute runs past the end of the message. */
  | "BadAttributeLength"
  /** A known attribute whose value does not parse. */
  | "BadAttributeValue"
  /** FINGERPRINT present but wrong, or not the last attribute. */
  | "BadFingerprint";

/** A decoding error: a kind to count, and a human-readable detail. */
export interface StunError {
  /** Error class, stable for metrics and tests. */
  kind: StunErrorKind;
  /** Free-form explanation for logs. */
  detail: string;
}

function stunError(kind: StunErrorKind, detail: string): { ok: false; error: StunError } {
  return err({ kind, detail });
}

/**
 * Whether `bytes` falls in STUN's demultiplexing range (RFC 7983 §7): first
 * byte 0–3, i.e. the top two bits zero, and at least a header long. RIFT
 * packets start with 0xC0|version (192–255), so one UDP socket can carry
 * both and tell them apart by the first byte alone.
 */
export function isStunPacket(bytes: Uint8Array): boolean {
  return bytes.length >= STUN_HEADER_LENGTH && bytes[0] <= 3;
}

/** The 14-bit message type for `method` and `cls` (RFC 8489 §5, figure 3). */
export function messageType(method: number, cls: StunClass): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) |
    ((cls & 1) << 4) | ((cls & 2) << 7);
}

/** Splits a 14-bit message type into method and class. */
export function splitMessageType(type: number): { method: number; messageClass: StunClass } {
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const messageClass = (((type >> 4) & 1) | ((type >> 7) & 2)) as StunClass;
  return { method, messageClass };
}

/**
 * The short-term credential key for `password` (RFC 8489 §9.1.1): the
 * password after OpaqueString (RFC 8265: non-ASCII spaces become U+0020,
 * then NFC), as UTF-8.
 */
export function shortTermKey(password: string): Uint8Array {
  return new TextEncoder().encode(password.replace(/\p{Zs}/gu, " ").normalize("NFC"));
}

/** A fresh random 96-bit transaction id (WebCrypto; no clock involved). */
export function newTransactionId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(TRANSACTION_ID_LENGTH));
}

/** Options for {@linkcode encodeStun}. */
export interface EncodeOptions {
  /** Adds MESSAGE-INTEGRITY (HMAC-SHA1) keyed with this short-term key. */
  integrityKey?: Uint8Array;
  /** Adds FINGERPRINT as the last attribute. */
  fingerprint?: boolean;
  /**
   * Padding byte value (default 0, as RFC 8489 asks). RFC 5769's vectors pad
   * with 0x20; receivers ignore padding either way.
   */
  paddingByte?: number;
}

const utf8 = new TextEncoder();
const utf8Lossy = new TextDecoder("utf-8", { fatal: false });

function addressValue(
  a: TransportAddress,
  xor: boolean,
  transactionId: Uint8Array,
): Uint8Array {
  const ip = parseIp(a.hostname);
  if (!ip) throw new RangeError(`not an IP address literal: ${a.hostname}`);
  const fam = ip.length === 4 ? "IPv4" : "IPv6";
  if (fam !== a.family) throw new RangeError(`${a.hostname} is not ${a.family}`);
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 0xffff) {
    throw new RangeError(`port ${a.port} out of range`);
  }
  const out = new Uint8Array(4 + ip.length);
  out[1] = ip.length === 4 ? 0x01 : 0x02;
  let port = a.port;
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    xorAddress(ip, transactionId);
  }
  out[2] = port >> 8;
  out[3] = port & 0xff;
  out.set(ip, 4);
  return out;
}

const COOKIE_BYTES = new Uint8Array([0x21, 0x12, 0xa4, 0x42]);

/** Xors an address in place with the cookie (IPv4) or cookie ‖ transaction id (IPv6). */
function xorAddress(ip: Uint8Array, transactionId: Uint8Array): void {
  for (let i = 0; i < ip.length; i++) {
    ip[i] ^= i < 4 ? COOKIE_BYTES[i] : transactionId[i - 4];
  }
}

function u32(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v);
  return out;
}

function attributeBody(
  a: StunAttribute,
  transactionId: Uint8Array,
): { type: number; value: Uint8Array } {
  switch (a.kind) {
    case "MappedAddress":
      return { type: StunAttr.MappedAddress, value: addressValue(a.address, false, transactionId) };
    case "XorMappedAddress":
      return {
        type: StunAttr.XorMappedAddress,
        value: addressValue(a.address, true, transactionId),
      };
    case "OtherAddress":
      return { type: StunAttr.OtherAddress, value: addressValue(a.address, false, transactionId) };
    case "ResponseOrigin":
      return {
        type: StunAttr.ResponseOrigin,
        value: addressValue(a.address, false, transactionId),
      };
    case "Username": {
      const value = utf8.encode(a.value);
      if (value.length > 512) throw new RangeError("USERNAME longer than 512 bytes");
      return { type: StunAttr.Username, value };
    }
    case "Software": {
      const value = utf8.encode(a.value);
      if (value.length > 763) throw new RangeError("SOFTWARE longer than 763 bytes");
      return { type: StunAttr.Software, value };
    }
    case "ErrorCode": {
      if (!Number.isInteger(a.code) || a.code < 300 || a.code > 699) {
        throw new RangeError(`error code ${a.code} outside 300..699`);
      }
      const reason = utf8.encode(a.reason);
      if (reason.length > 763) throw new RangeError("reason phrase longer than 763 bytes");
      const value = new Uint8Array(4 + reason.length);
      value[2] = Math.floor(a.code / 100);
      value[3] = a.code % 100;
      value.set(reason, 4);
      return { type: StunAttr.ErrorCode, value };
    }
    case "UnknownAttributes": {
      const value = new Uint8Array(a.types.length * 2);
      const view = new DataView(value.buffer);
      a.types.forEach((t, i) => {
        if (!Number.isInteger(t) || t < 0 || t > 0xffff) throw new RangeError(`bad type ${t}`);
        view.setUint16(2 * i, t);
      });
      return { type: StunAttr.UnknownAttributes, value };
    }
    case "ChangeRequest":
      return {
        type: StunAttr.ChangeRequest,
        value: u32((a.changeIp ? 0x04 : 0) | (a.changePort ? 0x02 : 0)),
      };
    case "ResponsePort": {
      if (!Number.isInteger(a.port) || a.port < 0 || a.port > 0xffff) {
        throw new RangeError(`port ${a.port} out of range`);
      }
      // 16 bits of port, then 16 bits of padding (RFC 5780 §7.5).
      return { type: StunAttr.ResponsePort, value: u32(a.port * 0x10000) };
    }
    case "Padding":
      if (!Number.isInteger(a.length) || a.length < 0 || a.length > 0xffff) {
        throw new RangeError(`padding length ${a.length} out of range`);
      }
      return { type: StunAttr.Padding, value: new Uint8Array(a.length) };
    case "Priority":
      if (!Number.isInteger(a.priority) || a.priority < 0 || a.priority > 0xffffffff) {
        throw new RangeError(`priority ${a.priority} is not a u32`);
      }
      return { type: StunAttr.Priority, value: u32(a.priority) };
    case "UseCandidate":
      return { type: StunAttr.UseCandidate, value: new Uint8Array(0) };
    case "IceControlling":
    case "IceControlled": {
      if (a.tieBreaker < 0n || a.tieBreaker > 0xffffffffffffffffn) {
        throw new RangeError("tie-breaker is not a u64");
      }
      const value = new Uint8Array(8);
      new DataView(value.buffer).setBigUint64(0, a.tieBreaker);
      return {
        type: a.kind === "IceControlling" ? StunAttr.IceControlling : StunAttr.IceControlled,
        value,
      };
    }
    case "Raw":
      if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0xffff) {
        throw new RangeError(`attribute type ${a.type} out of range`);
      }
      if (a.type === StunAttr.MessageIntegrity || a.type === StunAttr.Fingerprint) {
        throw new RangeError("MESSAGE-INTEGRITY and FINGERPRINT are added by encode options");
      }
      if (a.value.length > 0xffff) throw new RangeError("attribute value too long");
      return { type: a.type, value: a.value };
  }
}

const pad4 = (n: number) => (n + 3) & ~3;

/**
 * Encodes `msg` to a datagram, appending MESSAGE-INTEGRITY and FINGERPRINT
 * as `opts` asks (in that order, as RFC 8489 §14.5/§14.7 require).
 *
 * @throws {RangeError} on a caller bug: transaction id not 12 bytes, method
 * over 12 bits, an address that is not an IP literal, a value out of range.
 */
export function encodeStun(msg: StunMessage, opts: EncodeOptions = {}): Uint8Array {
  if (msg.transactionId.length !== TRANSACTION_ID_LENGTH) {
    throw new RangeError("transaction id must be 12 bytes");
  }
  if (!Number.isInteger(msg.method) || msg.method < 0 || msg.method > 0xfff) {
    throw new RangeError(`method ${msg.method} is not 12 bits`);
  }
  const bodies = msg.attributes.map((a) => attributeBody(a, msg.transactionId));
  let length = 0;
  for (const b of bodies) length += 4 + pad4(b.value.length);
  const miLen = opts.integrityKey ? 24 : 0;
  const fpLen = opts.fingerprint ? 8 : 0;
  const total = STUN_HEADER_LENGTH + length + miLen + fpLen;
  if (total - STUN_HEADER_LENGTH > 0xffff) throw new RangeError("message too long");
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint16(0, messageType(msg.method, msg.messageClass));
  view.setUint32(4, MAGIC_COOKIE);
  out.set(msg.transactionId, 8);
  let at = STUN_HEADER_LENGTH;
  const padByte = opts.paddingByte ?? 0;
  for (const b of bodies) {
    view.setUint16(at, b.type);
    view.setUint16(at + 2, b.value.length);
    out.set(b.value, at + 4);
    out.fill(padByte, at + 4 + b.value.length, at + 4 + pad4(b.value.length));
    at += 4 + pad4(b.value.length);
  }
  if (opts.integrityKey) {
    // The HMAC covers the header with its length pointing at the end of MESSAGE-INTEGRITY.
    view.setUint16(2, at + 24 - STUN_HEADER_LENGTH);
    const mac = hmac(sha1, opts.integrityKey, out.subarray(0, at));
    view.setUint16(at, StunAttr.MessageIntegrity);
    view.setUint16(at + 2, 20);
    out.set(mac, at + 4);
    at += 24;
  }
  view.setUint16(2, total - STUN_HEADER_LENGTH);
  if (opts.fingerprint) {
    view.setUint16(at, StunAttr.Fingerprint);
    view.setUint16(at + 2, 4);
    view.setUint32(at + 4, (crc32(out.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0);
  }
  return out;
}

function decodeAddress(
  v: Uint8Array,
  xor: boolean,
  transactionId: Uint8Array,
): TransportAddress | null {
  if (v.length < 4) return null;
  const fam = v[1];
  const len = fam === 1 ? 4 : fam === 2 ? 16 : 0;
  if (len === 0 || v.length !== 4 + len) return null;
  let port = (v[2] << 8) | v[3];
  const ip = v.slice(4, 4 + len);
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    xorAddress(ip, transactionId);
  }
  const family: IpFamily = len === 4 ? "IPv4" : "IPv6";
  return { hostname: formatIp(ip), port, family };
}

function decodeAttribute(
  type: number,
  v: Uint8Array,
  transactionId: Uint8Array,
): StunAttribute | null | "unknown" {
  const dv = new DataView(v.buffer, v.byteOffset, v.length);
  switch (type) {
    case StunAttr.MappedAddress:
    case StunAttr.XorMappedAddress:
    case StunAttr.OtherAddress:
    case StunAttr.ResponseOrigin: {
      const address = decodeAddress(v, type === StunAttr.XorMappedAddress, transactionId);
      if (!address) return null;
      const kind = type === StunAttr.MappedAddress
        ? "MappedAddress"
        : type === StunAttr.XorMappedAddress
        ? "XorMappedAddress"
        : type === StunAttr.OtherAddress
        ? "OtherAddress"
        : "ResponseOrigin";
      return { kind, address };
    }
    case StunAttr.Username:
      return v.length > 512 ? null : { kind: "Username", value: utf8Lossy.decode(v) };
    case StunAttr.Software:
      return v.length > 763 ? null : { kind: "Software", value: utf8Lossy.decode(v) };
    case StunAttr.ErrorCode: {
      if (v.length < 4 || v.length > 767) return null;
      const cls = v[2] & 0x07, num = v[3];
      if (cls < 3 || cls > 6 || num > 99) return null;
      return { kind: "ErrorCode", code: cls * 100 + num, reason: utf8Lossy.decode(v.subarray(4)) };
    }
    case StunAttr.UnknownAttributes: {
      if (v.length % 2 !== 0) return null;
      const types: number[] = [];
      for (let i = 0; i < v.length; i += 2) types.push(dv.getUint16(i));
      return { kind: "UnknownAttributes", types };
    }
    case StunAttr.ChangeRequest: {
      if (v.length !== 4) return null;
      const flags = dv.getUint32(0);
      return { kind: "ChangeRequest", changeIp: (flags & 4) !== 0, changePort: (flags & 2) !== 0 };
    }
    case StunAttr.ResponsePort:
      // RFC 5780 says 16 bits of port and 16 of padding; accept a bare 16-bit value too.
      return v.length !== 4 && v.length !== 2
        ? null
        : { kind: "ResponsePort", port: dv.getUint16(0) };
    case StunAttr.Padding:
      return { kind: "Padding", length: v.length };
    case StunAttr.Priority:
      return v.length !== 4 ? null : { kind: "Priority", priority: dv.getUint32(0) };
    case StunAttr.UseCandidate:
      return v.length !== 0 ? null : { kind: "UseCandidate" };
    case StunAttr.IceControlling:
    case StunAttr.IceControlled:
      if (v.length !== 8) return null;
      return {
        kind: type === StunAttr.IceControlling ? "IceControlling" : "IceControlled",
        tieBreaker: dv.getBigUint64(0),
      };
    default:
      return "unknown";
  }
}

/**
 * Decodes and validates a STUN datagram. Checks, in order: ≥ 20 bytes
 * (`Truncated`), top two bits zero (`NotStun`), magic cookie
 * (`BadMagicCookie`), header length a multiple of 4 and equal to what
 * follows (`BadLength`), each attribute inside the message
 * (`BadAttributeLength`), known attribute values well-formed
 * (`BadAttributeValue`), FINGERPRINT correct and last (`BadFingerprint`).
 * MESSAGE-INTEGRITY is located, not checked: the caller holds the key (see
 * {@linkcode verifyIntegrity}). Unknown attributes are kept as `Raw`; the
 * comprehension-required ones are also listed in `unknownRequired`.
 * Never throws.
 */
export function decodeStun(bytes: Uint8Array): Result<DecodedStun, StunError> {
  if (bytes.length < STUN_HEADER_LENGTH) {
    return stunError("Truncated", `${bytes.length} bytes is shorter than the STUN header`);
  }
  if ((bytes[0] & 0xc0) !== 0) {
    return stunError("NotStun", `first byte 0x${bytes[0].toString(16)} is outside 0..3`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (view.getUint32(4) !== MAGIC_COOKIE) {
    return stunError("BadMagicCookie", "bytes 4..7 are not 0x2112a442");
  }
  const length = view.getUint16(2);
  if (length % 4 !== 0 || length !== bytes.length - STUN_HEADER_LENGTH) {
    return stunError(
      "BadLength",
      `header length ${length} vs ${bytes.length - STUN_HEADER_LENGTH} bytes of attributes`,
    );
  }
  const { method, messageClass } = splitMessageType(view.getUint16(0));
  const transactionId = bytes.slice(8, 20);
  const attributes: StunAttribute[] = [];
  const unknownRequired: number[] = [];
  let integrityOffset = -1;
  let fingerprint = false;
  let at = STUN_HEADER_LENGTH;
  while (at < bytes.length) {
    if (fingerprint) {
      return stunError("BadFingerprint", "an attribute follows FINGERPRINT");
    }
    if (at + 4 > bytes.length) {
      return stunError("BadAttributeLength", `attribute header at ${at} is cut off`);
    }
    const type = view.getUint16(at);
    const len = view.getUint16(at + 2);
    if (at + 4 + pad4(len) > bytes.length) {
      return stunError("BadAttributeLength", `attribute 0x${type.toString(16)} runs past the end`);
    }
    const value = bytes.subarray(at + 4, at + 4 + len);
    if (type === StunAttr.Fingerprint) {
      if (len !== 4) return stunError("BadAttributeValue", "FINGERPRINT is not 4 bytes");
      const want = (crc32(bytes.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0;
      if (view.getUint32(at + 4) !== want) {
        return stunError("BadFingerprint", "FINGERPRINT does not match the message");
      }
      fingerprint = true;
    } else if (integrityOffset >= 0) {
      // RFC 8489 §14.5: everything after MESSAGE-INTEGRITY but FINGERPRINT is ignored.
    } else if (type === StunAttr.MessageIntegrity) {
      if (len !== 20) return stunError("BadAttributeValue", "MESSAGE-INTEGRITY is not 20 bytes");
      integrityOffset = at;
    } else {
      const a = decodeAttribute(type, value, transactionId);
      if (a === null) {
        return stunError("BadAttributeValue", `attribute 0x${type.toString(16)} is malformed`);
      }
      if (a === "unknown") {
        if (type < 0x8000) unknownRequired.push(type);
        attributes.push({ kind: "Raw", type, value: value.slice() });
      } else {
        attributes.push(a);
      }
    }
    at += 4 + pad4(len);
  }
  return ok({
    method,
    messageClass,
    transactionId,
    attributes,
    integrityOffset,
    fingerprint,
    unknownRequired,
  });
}

/**
 * Whether the MESSAGE-INTEGRITY of `bytes` (as located by
 * {@linkcode decodeStun}) is the HMAC-SHA1 under `key`. `false` when absent.
 * Constant-time comparison. Never throws.
 */
export function verifyIntegrity(bytes: Uint8Array, decoded: DecodedStun, key: Uint8Array): boolean {
  const at = decoded.integrityOffset;
  if (at < STUN_HEADER_LENGTH || at + 24 > bytes.length) return false;
  const covered = bytes.slice(0, at);
  new DataView(covered.buffer).setUint16(2, at + 24 - STUN_HEADER_LENGTH);
  const mac = hmac(sha1, key, covered);
  let diff = 0;
  for (let i = 0; i < 20; i++) diff |= mac[i] ^ bytes[at + 4 + i];
  return diff === 0;
}

/** The first attribute of `kind` in `msg`, typed, or `undefined`. */
export function findAttribute<K extends StunAttributeKind>(
  msg: StunMessage,
  kind: K,
): Extract<StunAttribute, { kind: K }> | undefined {
  for (const a of msg.attributes) {
    if (a.kind === kind) return a as Extract<StunAttribute, { kind: K }>;
  }
  return undefined;
}

/**
 * The mapped address a response reports: XOR-MAPPED-ADDRESS, else the
 * legacy MAPPED-ADDRESS (RFC 8489 §14.1 keeps it for old servers).
 */
export function mappedAddressOf(msg: StunMessage): TransportAddress | undefined {
  return findAttribute(msg, "XorMappedAddress")?.address ??
    findAttribute(msg, "MappedAddress")?.address;
}

/** Whether two transaction ids are equal. */
export function sameTransactionId(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
