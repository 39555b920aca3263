/**
 * ChaCha20-Poly1305 (RFC 8439) with interchangeable backends: the pure
 * TypeScript `@noble/ciphers` implementation, the native `chacha20-poly1305`
 * cipher of `node:crypto` (which Deno implements in Rust), and a raw
 * implementation registered from outside this folder (`"native"`: the FFI
 * shim's OpenSSL binding, plugged in by edge/native_aead.ts — crypto/ never
 * loads native code itself).
 *
 * Both produce byte-identical output, so the two ends of a session may use
 * different backends. `open` never throws: a forged, truncated or otherwise
 * unauthenticated input yields `undefined`.
 *
 * @module
 */

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { createCipheriv, createDecipheriv } from "node:crypto";

/** Which ChaCha20-Poly1305 implementation an {@linkcode Aead} uses. */
export type AeadBackend = "noble" | "node" | "native";

/**
 * A ChaCha20-Poly1305 primitive supplied from outside crypto/ (one call per
 * packet, no allocation). `out` is exactly `plaintext.length + 16` bytes for
 * seal and `sealed.length - 16` for open; open returns false when the tag
 * does not verify.
 */
export interface RawChaChaPoly {
  seal(
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
  ): void;
  open(
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
  ): boolean;
}

let rawNative: RawChaChaPoly | undefined;

/**
 * Makes the `"native"` backend available in this thread (each worker has its
 * own module instance, so each registers). Implementations must be
 * byte-identical to RFC 8439; crypto/aead_test.ts checks the vectors.
 */
export function registerNativeAead(impl: RawChaChaPoly): void {
  rawNative = impl;
}

/** Whether {@linkcode registerNativeAead} was called in this thread. */
export function nativeAeadRegistered(): boolean {
  return rawNative !== undefined;
}

/**
 * The backend used when none is given. `"node"` (native code) measured about
 * 2.3x faster than `"noble"` for 1200-byte packets on Deno 2.9 (see
 * docs/CRYPTO.md for the numbers and how to reproduce them).
 */
export const DEFAULT_AEAD_BACKEND: AeadBackend = "node";

/** Key length of ChaCha20-Poly1305 in bytes. */
export const AEAD_KEY_LENGTH = 32;
/** Nonce length of ChaCha20-Poly1305 (IETF variant) in bytes. */
export const AEAD_NONCE_LENGTH = 12;
/** Poly1305 tag length in bytes; appended to every sealed message. */
export const AEAD_TAG_LENGTH = 16;

/** A ChaCha20-Poly1305 instance bound to one key. */
export interface Aead {
  /** The implementation in use. */
  readonly backend: AeadBackend;
  /**
   * Encrypts and authenticates `plaintext`, also authenticating `ad`.
   * Returns `ciphertext || tag` (plaintext length + 16 bytes).
   * Throws a `RangeError` only on programmer error (a nonce that is not 12 bytes).
   */
  seal(nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /**
   * Like {@linkcode Aead.seal}, but writes `ciphertext || tag` into `out` at
   * `offset` (which must have room for `plaintext.length + 16` bytes), so the
   * data path can seal straight into the datagram it sends.
   */
  sealInto(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): void;
  /**
   * Authenticates and decrypts `sealed` (`ciphertext || tag`). Returns the
   * plaintext, or `undefined` if authentication fails or the input is
   * malformed. Never throws.
   */
  open(
    nonce: Uint8Array,
    sealed: Uint8Array,
    ad: Uint8Array,
  ): Uint8Array | undefined;
}

const EMPTY = new Uint8Array(0);

/** Argument checks and the seal/open contract shared by both backends. */
abstract class ChaChaPolyAead implements Aead {
  abstract readonly backend: AeadBackend;
  protected readonly key: Uint8Array;

  constructor(key: Uint8Array) {
    this.key = key;
  }

  seal(nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
    const out = new Uint8Array(plaintext.length + AEAD_TAG_LENGTH);
    this.sealInto(nonce, plaintext, ad, out, 0);
    return out;
  }

  sealInto(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): void {
    checkNonce(nonce);
    checkRoom(plaintext, out, offset);
    this.sealRaw(
      nonce,
      plaintext,
      ad,
      out.subarray(offset, offset + plaintext.length + AEAD_TAG_LENGTH),
    );
  }

  open(nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
    if (nonce.length !== AEAD_NONCE_LENGTH || sealed.length < AEAD_TAG_LENGTH) return undefined;
    try {
      return this.openRaw(nonce, sealed, ad);
    } catch {
      return undefined;
    }
  }

  /** Writes ciphertext || tag into `out`, which is exactly plaintext.length + 16 bytes. */
  protected abstract sealRaw(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
  ): void;

  /** Decrypts; throws or returns undefined when authentication fails. */
  protected abstract openRaw(
    nonce: Uint8Array,
    sealed: Uint8Array,
    ad: Uint8Array,
  ): Uint8Array | undefined;
}

class NobleAead extends ChaChaPolyAead {
  readonly backend: AeadBackend = "noble";

  protected sealRaw(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
  ): void {
    chacha20poly1305(this.key, nonce, ad).encrypt(plaintext, out);
  }

  protected openRaw(nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
    return chacha20poly1305(this.key, nonce, ad).decrypt(sealed);
  }
}

class NodeAead extends ChaChaPolyAead {
  readonly backend: AeadBackend = "node";

  protected sealRaw(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
  ): void {
    const cipher = createCipheriv("chacha20-poly1305", this.key, nonce, {
      authTagLength: AEAD_TAG_LENGTH,
    });
    cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    const tail = cipher.final(); // empty for a stream cipher, kept for safety
    // One copy, straight into the caller's buffer.
    out.set(body, 0);
    if (tail.length > 0) out.set(tail, body.length);
    out.set(cipher.getAuthTag(), body.length + tail.length);
  }

  protected openRaw(nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
    const ctLength = sealed.length - AEAD_TAG_LENGTH;
    const decipher = createDecipheriv("chacha20-poly1305", this.key, nonce, {
      authTagLength: AEAD_TAG_LENGTH,
    });
    decipher.setAuthTag(sealed.subarray(ctLength));
    decipher.setAAD(ad, { plaintextLength: ctLength });
    const body = ctLength === 0 ? EMPTY : decipher.update(sealed.subarray(0, ctLength));
    const tail = decipher.final(); // throws when the tag does not verify
    if (tail.length === 0) {
      // View, not copy, of the Buffer the native code produced.
      return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    }
    const out = new Uint8Array(body.length + tail.length);
    out.set(body, 0);
    out.set(tail, body.length);
    return out;
  }
}

class NativeAead extends ChaChaPolyAead {
  readonly backend: AeadBackend = "native";
  readonly #raw: RawChaChaPoly;

  constructor(key: Uint8Array, raw: RawChaChaPoly) {
    super(key);
    this.#raw = raw;
  }

  protected sealRaw(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    ad: Uint8Array,
    out: Uint8Array,
  ): void {
    this.#raw.seal(this.key, nonce, ad, plaintext, out);
  }

  protected openRaw(nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
    const out = new Uint8Array(sealed.length - AEAD_TAG_LENGTH);
    return this.#raw.open(this.key, nonce, ad, sealed, out) ? out : undefined;
  }
}

function checkRoom(plaintext: Uint8Array, out: Uint8Array, offset: number): void {
  if (!(offset >= 0) || offset + plaintext.length + AEAD_TAG_LENGTH > out.length) {
    throw new RangeError(
      `sealInto needs ${plaintext.length + AEAD_TAG_LENGTH} bytes at offset ${offset}, ` +
        `the buffer has ${out.length}`,
    );
  }
}

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== AEAD_NONCE_LENGTH) {
    throw new RangeError(
      `ChaCha20-Poly1305 nonce must be ${AEAD_NONCE_LENGTH} bytes, got ${nonce.length}`,
    );
  }
}

/**
 * Creates a ChaCha20-Poly1305 instance for a 32-byte `key`. The key is copied,
 * so the caller may wipe its array afterwards.
 *
 * @param key 32-byte key.
 * @param backend implementation to use; defaults to {@linkcode DEFAULT_AEAD_BACKEND}.
 * @throws {RangeError} if the key is not 32 bytes or the backend is unknown.
 */
export function createAead(
  key: Uint8Array,
  backend: AeadBackend = DEFAULT_AEAD_BACKEND,
): Aead {
  if (!(key instanceof Uint8Array) || key.length !== AEAD_KEY_LENGTH) {
    throw new RangeError(`ChaCha20-Poly1305 key must be ${AEAD_KEY_LENGTH} bytes`);
  }
  const copy = key.slice();
  switch (backend) {
    case "noble":
      return new NobleAead(copy);
    case "node":
      return new NodeAead(copy);
    case "native":
      if (rawNative === undefined) {
        throw new RangeError('AEAD backend "native" is not registered in this thread');
      }
      return new NativeAead(copy, rawNative);
    default:
      throw new RangeError(`unknown AEAD backend: ${String(backend)}`);
  }
}

const TWO_POW_32 = 0x1_0000_0000;

/**
 * Builds the 12-byte Noise/RIFT nonce for a packet counter: four zero bytes,
 * then the counter as an unsigned 64-bit little-endian integer.
 *
 * @param counter integer in `[0, 2^53)`.
 * @param out optional 12-byte array to write into (avoids an allocation).
 * @returns `out` (or a new array) holding the nonce.
 * @throws {RangeError} if `counter` is not a safe non-negative integer or `out` is not 12 bytes.
 */
export function nonceFromCounter(
  counter: number,
  out: Uint8Array = new Uint8Array(AEAD_NONCE_LENGTH),
): Uint8Array {
  if (!Number.isSafeInteger(counter) || counter < 0) {
    throw new RangeError(
      `nonce counter must be an integer in [0, 2^53), got ${counter}`,
    );
  }
  if (out.length !== AEAD_NONCE_LENGTH) {
    throw new RangeError(`nonce buffer must be ${AEAD_NONCE_LENGTH} bytes`);
  }
  const lo = counter >>> 0;
  const hi = Math.floor(counter / TWO_POW_32);
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  out[4] = lo & 0xff;
  out[5] = (lo >>> 8) & 0xff;
  out[6] = (lo >>> 16) & 0xff;
  out[7] = lo >>> 24;
  out[8] = hi & 0xff;
  out[9] = (hi >>> 8) & 0xff;
  out[10] = (hi >>> 16) & 0xff;
  out[11] = hi >>> 24;
  return out;
}
