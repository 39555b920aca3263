/**
 * The relay's own wire messages: BIND_REQUEST (a peer presents its lease and
 * proves it is one of the lease's peers), BIND_ACK and BIND_ERROR. Everything
 * else a bound peer sends is a RIFT datagram the relay forwards untouched.
 *
 * First bytes 0x40–0x42 sit in RFC 7983's 64–79 range (TURN ChannelData), so
 * they never collide with STUN (0–3) or RIFT (0xC0–0xFF) on a shared socket.
 * Decoders never throw; encoders throw `RangeError` only for caller bugs.
 * Layouts are specified in docs/RELAY.md.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import {
  type IdentityKeyPair,
  signWithIdentity,
  verifyIdentitySignature,
} from "../crypto/identity.ts";

/** Version of the relay messages (byte 1 of each). */
export const RELAY_WIRE_VERSION = 1;
/** First byte of a BIND_REQUEST. */
export const BIND_REQUEST = 0x40;
/** First byte of a BIND_ACK. */
export const BIND_ACK = 0x41;
/** First byte of a BIND_ERROR. */
export const BIND_ERROR = 0x42;
/** Length of a BIND_ACK. */
export const BIND_ACK_LENGTH = 24;
/** Length of a BIND_ERROR. */
export const BIND_ERROR_LENGTH = 20;
/** Bytes of a BIND_REQUEST besides the lease token. */
export const BIND_REQUEST_OVERHEAD = 4 + 32 + 8 + 8 + 64;
/** Longest lease token a BIND_REQUEST may carry (as `crypto/lease.ts` accepts). */
export const MAX_BIND_LEASE_LENGTH = 4096;
/** Domain separation prefix of the peer's signature (ASCII, ends with a NUL). */
export const BIND_SIGNATURE_CONTEXT: Uint8Array = new TextEncoder().encode(
  "wavry relay bind v1\0",
);

/** State a BIND_ACK reports. */
export const BindState = {
  /** This peer is bound; the other peer is not yet. */
  WaitingForPeer: 1,
  /** Both peers are bound: datagrams are forwarded. */
  Ready: 2,
} as const;
/** One of {@linkcode BindState}. */
export type BindState = typeof BindState[keyof typeof BindState];

/** A decoded BIND_REQUEST. Views point into the datagram. */
export interface BindRequest {
  /** The lease token (ASCII `v4.public.…`). */
  lease: string;
  /** The lease token's bytes, as sent (what the signature hashes). */
  leaseBytes: Uint8Array;
  /** The sender's Ed25519 identity public key (32 bytes). */
  peerKey: Uint8Array;
  /** Sender's wall-clock time, ms since the Unix epoch. */
  timestampMs: number;
  /** 8 random bytes, echoed in the answer. */
  nonce: Uint8Array;
  /** Ed25519 signature over {@linkcode bindSignedMessage}. */
  signature: Uint8Array;
}

/** A decoded BIND_ACK. */
export interface BindAck {
  /** Bound state of the session. */
  state: BindState;
  /** Echo of the request's timestamp. */
  timestampMs: number;
  /** Echo of the request's nonce. */
  nonce: Uint8Array;
  /** After this long without traffic from the peer, its binding ends (ms). */
  idleTimeoutMs: number;
}

/** Codes a BIND_ERROR carries (byte 2). */
export const BindErrorCode = {
  LeaseMalformed: 1,
  LeaseForged: 2,
  LeaseExpired: 3,
  LeaseNotYetValid: 4,
  LeaseWrongRelay: 5,
  PeerNotInLease: 6,
  BadPeerSignature: 7,
  BindStale: 8,
  BindReplayed: 9,
  TableFull: 10,
  AddressInUse: 11,
  SessionConflict: 12,
} as const;
/** A name of {@linkcode BindErrorCode}. */
export type BindErrorKind = keyof typeof BindErrorCode;

/** A decoded BIND_ERROR. */
export interface BindError {
  /** Why the binding was refused; `Unknown` for a code this version does not know. */
  kind: BindErrorKind | "Unknown";
  /** Echo of the request's timestamp. */
  timestampMs: number;
  /** Echo of the request's nonce. */
  nonce: Uint8Array;
}

const textDecoder = new TextDecoder("utf-8", { fatal: true });
const textEncoder = new TextEncoder();

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function readU64(dv: DataView, off: number): number | undefined {
  const v = dv.getBigUint64(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
}

/** SHA-256 of the lease token's bytes: what binds a signature to one lease. */
export function leaseHash(leaseBytes: Uint8Array): Uint8Array {
  return sha256(leaseBytes);
}

/**
 * The bytes a peer signs: context ‖ SHA-256(lease) ‖ peerKey ‖ timestamp (u64 BE) ‖ nonce.
 */
export function bindSignedMessage(
  leaseDigest: Uint8Array,
  peerKey: Uint8Array,
  timestampMs: number,
  nonce: Uint8Array,
): Uint8Array {
  const ctx = BIND_SIGNATURE_CONTEXT.length;
  const out = new Uint8Array(ctx + 32 + 32 + 8 + 8);
  out.set(BIND_SIGNATURE_CONTEXT, 0);
  out.set(leaseDigest, ctx);
  out.set(peerKey, ctx + 32);
  view(out).setBigUint64(ctx + 64, BigInt(timestampMs));
  out.set(nonce, ctx + 72);
  return out;
}

/**
 * Builds a signed BIND_REQUEST (what a peer sends to open or refresh its binding).
 *
 * @param lease the `v4.public.` lease the gateway gave this peer.
 * @param identity the peer's identity; its public key must be one of the lease's peers.
 * @param timestampMs the peer's wall-clock time (ms since the epoch); must increase per request.
 * @param nonce 8 random bytes (echoed in the answer).
 * @throws {RangeError} for a lease too long or not ASCII, a bad nonce or timestamp.
 */
export function encodeBindRequest(
  lease: string,
  identity: IdentityKeyPair,
  timestampMs: number,
  nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(8)),
): Uint8Array {
  const leaseBytes = textEncoder.encode(lease);
  if (leaseBytes.length === 0 || leaseBytes.length > MAX_BIND_LEASE_LENGTH) {
    throw new RangeError("lease must be 1..4096 bytes");
  }
  if (leaseBytes.length !== lease.length) throw new RangeError("lease must be ASCII");
  if (nonce.length !== 8) throw new RangeError("nonce must be 8 bytes");
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) {
    throw new RangeError("timestampMs must be a non-negative safe integer");
  }
  const signature = signWithIdentity(
    identity,
    bindSignedMessage(leaseHash(leaseBytes), identity.publicKey, timestampMs, nonce),
  );
  const out = new Uint8Array(BIND_REQUEST_OVERHEAD + leaseBytes.length);
  const dv = view(out);
  out[0] = BIND_REQUEST;
  out[1] = RELAY_WIRE_VERSION;
  dv.setUint16(2, leaseBytes.length);
  let off = 4;
  out.set(leaseBytes, off);
  off += leaseBytes.length;
  out.set(identity.publicKey, off);
  off += 32;
  dv.setBigUint64(off, BigInt(timestampMs));
  off += 8;
  out.set(nonce, off);
  off += 8;
  out.set(signature, off);
  return out;
}

/**
 * Decodes a BIND_REQUEST. Checks only shape (version, lengths, ASCII lease,
 * timestamp range); the lease and the signature are the binding table's job.
 * Never throws.
 */
export function decodeBindRequest(bytes: Uint8Array): BindRequest | undefined {
  if (bytes.length < BIND_REQUEST_OVERHEAD + 1) return undefined;
  if (bytes[0] !== BIND_REQUEST || bytes[1] !== RELAY_WIRE_VERSION) return undefined;
  const dv = view(bytes);
  const leaseLength = dv.getUint16(2);
  if (leaseLength === 0 || leaseLength > MAX_BIND_LEASE_LENGTH) return undefined;
  if (bytes.length !== BIND_REQUEST_OVERHEAD + leaseLength) return undefined;
  const leaseBytes = bytes.subarray(4, 4 + leaseLength);
  for (const b of leaseBytes) if (b < 0x21 || b > 0x7e) return undefined;
  let off = 4 + leaseLength;
  const peerKey = bytes.subarray(off, off + 32);
  off += 32;
  const timestampMs = readU64(dv, off);
  if (timestampMs === undefined) return undefined;
  off += 8;
  const nonce = bytes.subarray(off, off + 8);
  off += 8;
  const signature = bytes.subarray(off, off + 64);
  return {
    lease: textDecoder.decode(leaseBytes),
    leaseBytes,
    peerKey,
    timestampMs,
    nonce,
    signature,
  };
}

/** Checks a request's peer signature against its lease digest. Never throws. */
export function verifyBindSignature(request: BindRequest, leaseDigest: Uint8Array): boolean {
  return verifyIdentitySignature(
    request.peerKey,
    bindSignedMessage(leaseDigest, request.peerKey, request.timestampMs, request.nonce),
    request.signature,
  );
}

/** Encodes a BIND_ACK answering a request with `timestampMs` and `nonce`. */
export function encodeBindAck(ack: BindAck): Uint8Array {
  const out = new Uint8Array(BIND_ACK_LENGTH);
  const dv = view(out);
  out[0] = BIND_ACK;
  out[1] = RELAY_WIRE_VERSION;
  out[2] = ack.state;
  dv.setBigUint64(4, BigInt(ack.timestampMs));
  out.set(ack.nonce.subarray(0, 8), 12);
  dv.setUint32(20, Math.min(0xffffffff, Math.max(0, Math.floor(ack.idleTimeoutMs))));
  return out;
}

/** Decodes a BIND_ACK; never throws. */
export function decodeBindAck(bytes: Uint8Array): BindAck | undefined {
  if (bytes.length !== BIND_ACK_LENGTH) return undefined;
  if (bytes[0] !== BIND_ACK || bytes[1] !== RELAY_WIRE_VERSION) return undefined;
  const state = bytes[2];
  if (state !== BindState.WaitingForPeer && state !== BindState.Ready) return undefined;
  const dv = view(bytes);
  const timestampMs = readU64(dv, 4);
  if (timestampMs === undefined) return undefined;
  return {
    state,
    timestampMs,
    nonce: bytes.slice(12, 20),
    idleTimeoutMs: dv.getUint32(20),
  };
}

/** Encodes a BIND_ERROR. */
export function encodeBindError(
  kind: BindErrorKind,
  timestampMs: number,
  nonce: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(BIND_ERROR_LENGTH);
  out[0] = BIND_ERROR;
  out[1] = RELAY_WIRE_VERSION;
  out[2] = BindErrorCode[kind];
  view(out).setBigUint64(4, BigInt(timestampMs));
  out.set(nonce.subarray(0, 8), 12);
  return out;
}

const ERROR_KINDS = new Map<number, BindErrorKind>(
  (Object.entries(BindErrorCode) as [BindErrorKind, number][]).map(([k, v]) => [v, k]),
);

/** Decodes a BIND_ERROR; never throws. */
export function decodeBindError(bytes: Uint8Array): BindError | undefined {
  if (bytes.length !== BIND_ERROR_LENGTH) return undefined;
  if (bytes[0] !== BIND_ERROR || bytes[1] !== RELAY_WIRE_VERSION) return undefined;
  const timestampMs = readU64(view(bytes), 4);
  if (timestampMs === undefined) return undefined;
  return {
    kind: ERROR_KINDS.get(bytes[2]) ?? "Unknown",
    timestampMs,
    nonce: bytes.slice(12, 20),
  };
}
