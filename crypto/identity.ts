/**
 * Ed25519 long-term identities (RFC 8032, pure Ed25519).
 *
 * A host's or client's identity is an Ed25519 key pair. The public key is
 * what peers pin and what the gateway authenticates; the fingerprint is a
 * short form for humans to compare. Synchronous, no I/O.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";

/** Ed25519 public key length. */
export const IDENTITY_PUBLIC_KEY_LENGTH = 32;
/** Ed25519 secret seed length. */
export const IDENTITY_SEED_LENGTH = 32;
/** Ed25519 signature length. */
export const IDENTITY_SIGNATURE_LENGTH = 64;

/** An Ed25519 key pair; the secret is the 32-byte RFC 8032 seed. */
export interface IdentityKeyPair {
  /** 32-byte encoded public key A. */
  readonly publicKey: Uint8Array;
  /** 32-byte secret seed (RFC 8032 "private key"). */
  readonly secretKey: Uint8Array;
}

/**
 * Derive the key pair for a 32-byte seed.
 *
 * @param seed the RFC 8032 private key (32 bytes).
 * @returns the key pair (the seed is copied).
 * @throws RangeError if the seed is not 32 bytes (programming error).
 */
export function identityFromSeed(seed: Uint8Array): IdentityKeyPair {
  if (seed.length !== IDENTITY_SEED_LENGTH) {
    throw new RangeError("identity seed must be 32 bytes");
  }
  const secretKey = Uint8Array.from(seed);
  return { publicKey: ed25519.getPublicKey(secretKey), secretKey };
}

/**
 * Generate a fresh identity.
 *
 * @param random source of random bytes; defaults to `crypto.getRandomValues`.
 * @returns the new key pair.
 */
export function generateIdentity(
  random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n)),
): IdentityKeyPair {
  return identityFromSeed(random(IDENTITY_SEED_LENGTH));
}

/**
 * Sign a message (pure Ed25519, deterministic).
 *
 * @param identity the signer's key pair.
 * @param message bytes to sign.
 * @returns the 64-byte signature.
 */
export function signWithIdentity(identity: IdentityKeyPair, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, identity.secretKey);
}

/**
 * Verify an Ed25519 signature with RFC 8032 (strict) rules: non-canonical
 * encodings of R, S or the key are refused, so a signature cannot be
 * mutated into another valid one.
 *
 * @param publicKey 32-byte public key.
 * @param message signed bytes.
 * @param signature 64-byte signature.
 * @returns true only for a valid signature; false for anything else,
 *   including inputs of the wrong length and small-order public keys.
 *   Never throws.
 */
export function verifyIdentitySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (
    !(publicKey instanceof Uint8Array) || !(message instanceof Uint8Array) ||
    !(signature instanceof Uint8Array)
  ) return false;
  if (publicKey.length !== IDENTITY_PUBLIC_KEY_LENGTH) return false;
  if (signature.length !== IDENTITY_SIGNATURE_LENGTH) return false;
  try {
    // A small-order key (e.g. the neutral point) admits signatures that
    // verify for any message: nobody can own such a key, so refuse it.
    if (ed25519.Point.fromBytes(publicKey, false).isSmallOrder()) return false;
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32, no padding (input length here is always a multiple of 5). */
function base32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/**
 * A short, human-comparable id for a public key: the first 10 bytes (80
 * bits) of BLAKE2s-256(publicKey), in RFC 4648 base32 (upper case, no
 * padding, alphabet A-Z 2-7 so no 0/O or 1/I confusion), 16 characters
 * shown as four groups of four joined by "-", e.g. `MZXW-6YTB-OI3T-QZ2B`.
 * 80 bits make finding a second key with the same fingerprint take about
 * 2^80 work. It is for people to compare; protocols compare whole keys.
 *
 * @param publicKey 32-byte Ed25519 public key.
 * @returns the fingerprint.
 */
export function identityFingerprint(publicKey: Uint8Array): string {
  const digest = blake2s(publicKey).subarray(0, 10);
  const text = base32(digest);
  return text.match(/.{4}/g)!.join("-");
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Encode a public key as unpadded base64url (43 characters), the text form
 * used in configuration files, the gateway API and logs.
 *
 * @param publicKey 32-byte Ed25519 public key.
 * @returns the 43-character encoding.
 */
export function encodeIdentityPublicKey(publicKey: Uint8Array): string {
  let out = "";
  for (let i = 0; i < publicKey.length; i += 3) {
    const n = (publicKey[i] << 16) | ((publicKey[i + 1] ?? 0) << 8) | (publicKey[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((publicKey.length - i) * 8) / 6));
    for (let c = 0; c < chars; c++) out += B64URL[(n >>> (18 - 6 * c)) & 63];
  }
  return out;
}

/**
 * Decode an unpadded base64url public key.
 *
 * @param text 43 characters of base64url, no padding, no whitespace.
 * @returns the 32-byte key, or `undefined` if the text is not the canonical
 *   encoding of 32 bytes, or the bytes are not a canonical Ed25519 point
 *   of large order. Never throws.
 */
export function decodeIdentityPublicKey(text: string): Uint8Array | undefined {
  if (typeof text !== "string" || text.length !== 43) return undefined;
  const out = new Uint8Array(IDENTITY_PUBLIC_KEY_LENGTH);
  let buffer = 0;
  let bits = 0;
  let o = 0;
  for (const ch of text) {
    const v = B64URL.indexOf(ch);
    if (v < 0) return undefined;
    buffer = (buffer << 6) | v;
    bits += 6;
    if (bits >= 8) {
      out[o++] = (buffer >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  // 43 chars carry 258 bits: the 2 spare bits must be zero (canonical form).
  if (o !== IDENTITY_PUBLIC_KEY_LENGTH || buffer !== 0) return undefined;
  try {
    if (ed25519.Point.fromBytes(out, false).isSmallOrder()) return undefined;
  } catch {
    return undefined;
  }
  return out;
}
