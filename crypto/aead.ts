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
  /** Optional: {@linkcode Aead.sealBatch} in one call (else the backend loops over `seal`). */
  sealBatch?(key: Uint8Array, batch: AeadBatch, adLength: number): void;
  /** Optional: {@linkcode Aead.openBatch} in one call (else the backend loops over `open`). */
  openBatch?(
    key: Uint8Array,
    batch: AeadBatch,
    adLength: number,
    dst: Uint8Array,
    dstOffsets: Int32Array,
    ok: Uint8Array,
  ): number;
}

/**
 * Packets laid out in one buffer for a batch seal or open: packet `i` is
 * `buffer[offsets[i], offsets[i] + lengths[i])`, made of `adLength` bytes of
 * associated data (the RIFT header), the plaintext or ciphertext, and the
 * 16-byte tag. Its nonce is {@linkcode nonceFromCounter}(`counters[i]`).
 */
export interface AeadBatch {
  /** The buffer holding every packet. */
  buffer: Uint8Array;
  /** Start of packet i in `buffer`. */
  offsets: Int32Array;
  /** Length of packet i, associated data and tag included. */
  lengths: Int32Array;
  /** Nonce counter of packet i (an integer in [0, 2^53)). */
  counters: Float64Array;
  /** Packets in the batch (the arrays may be longer). */
  count: number;
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
  /**
   * Seals every packet of `batch` in place: each packet's plaintext (after
   * its `adLength` bytes of associated data) is encrypted where it is and its
   * last 16 bytes receive the tag. Byte for byte what {@linkcode Aead.seal}
   * gives for each packet alone; the native backend does it in one call.
   * Throws a `RangeError` only on programmer error (a packet outside the
   * buffer or shorter than `adLength + 16`, a bad counter).
   */
  sealBatch(batch: AeadBatch, adLength: number): void;
  /**
   * Opens the packets of `batch` whose `ok[i]` is 1 (the others are skipped),
   * writing packet i's plaintext (`lengths[i] - adLength - 16` bytes) to
   * `dst` at `dstOffsets[i]` (which may be the ciphertext's own place: the
   * source is then overwritten). On return `ok[i]` is 1 exactly for the
   * packets that authenticated; a forged packet leaves its neighbours
   * untouched. Returns how many authenticated. Never throws for bad packets.
   */
  openBatch(
    batch: AeadBatch,
    adLength: number,
    dst: Uint8Array,
    dstOffsets: Int32Array,
    ok: Uint8Array,
  ): number;
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

  sealBatch(batch: AeadBatch, adLength: number): void {
    checkBatch(batch, adLength, batch.buffer);
    this.sealBatchRaw(batch, adLength);
  }

  openBatch(
    batch: AeadBatch,
    adLength: number,
    dst: Uint8Array,
    dstOffsets: Int32Array,
    ok: Uint8Array,
  ): number {
    const { buffer, offsets, lengths, counters, count } = batch;
    if (!(count >= 0) || count > ok.length || count > dstOffsets.length) {
      throw new RangeError(`openBatch: count ${count} beyond its arrays`);
    }
    // Packets that do not fit their buffers are not opened (they are someone's malformed input).
    for (let i = 0; i < count; i++) {
      const len = lengths[i] - adLength - AEAD_TAG_LENGTH;
      if (
        ok[i] === 1 && !(
          offsets[i] >= 0 && len >= 0 && offsets[i] + lengths[i] <= buffer.length &&
          dstOffsets[i] >= 0 && dstOffsets[i] + len <= dst.length &&
          Number.isSafeInteger(counters[i]) && counters[i] >= 0
        )
      ) ok[i] = 0;
    }
    return this.openBatchRaw(batch, adLength, dst, dstOffsets, ok);
  }

  /** Seals a checked batch; backends without a batch primitive loop over sealRaw. */
  protected sealBatchRaw(batch: AeadBatch, adLength: number): void {
    const { buffer, offsets, lengths, counters, count } = batch;
    const nonce = new Uint8Array(AEAD_NONCE_LENGTH);
    for (let i = 0; i < count; i++) {
      const start = offsets[i], end = start + lengths[i];
      const pt = buffer.subarray(start + adLength, end - AEAD_TAG_LENGTH);
      // sealRaw may not write in place over its input in every backend: seal a copy.
      this.sealRaw(
        nonceFromCounter(counters[i], nonce),
        pt.slice(),
        buffer.subarray(start, start + adLength),
        buffer.subarray(start + adLength, end),
      );
    }
  }

  /** Opens a checked batch; backends without a batch primitive loop over open. */
  protected openBatchRaw(
    batch: AeadBatch,
    adLength: number,
    dst: Uint8Array,
    dstOffsets: Int32Array,
    ok: Uint8Array,
  ): number {
    const { buffer, offsets, lengths, counters, count } = batch;
    const nonce = new Uint8Array(AEAD_NONCE_LENGTH);
    let opened = 0;
    for (let i = 0; i < count; i++) {
      if (ok[i] !== 1) continue;
      const start = offsets[i], end = start + lengths[i];
      const plaintext = this.open(
        nonceFromCounter(counters[i], nonce),
        buffer.subarray(start + adLength, end),
        buffer.subarray(start, start + adLength),
      );
      if (plaintext === undefined) {
        ok[i] = 0;
        dst.fill(0, dstOffsets[i], dstOffsets[i] + lengths[i] - adLength - AEAD_TAG_LENGTH);
      } else {
        dst.set(plaintext, dstOffsets[i]);
        opened++;
      }
    }
    return opened;
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

  protected override sealBatchRaw(batch: AeadBatch, adLength: number): void {
    if (this.#raw.sealBatch === undefined) return super.sealBatchRaw(batch, adLength);
    this.#raw.sealBatch(this.key, batch, adLength);
  }

  protected override openBatchRaw(
    batch: AeadBatch,
    adLength: number,
    dst: Uint8Array,
    dstOffsets: Int32Array,
    ok: Uint8Array,
  ): number {
    if (this.#raw.openBatch === undefined) {
      return super.openBatchRaw(batch, adLength, dst, dstOffsets, ok);
    }
    return this.#raw.openBatch(this.key, batch, adLength, dst, dstOffsets, ok);
  }
}

function checkBatch(batch: AeadBatch, adLength: number, buffer: Uint8Array): void {
  const { offsets, lengths, counters, count } = batch;
  if (
    !Number.isInteger(count) || count < 0 || count > offsets.length || count > lengths.length ||
    count > counters.length || !Number.isInteger(adLength) || adLength < 0
  ) {
    throw new RangeError(`sealBatch: count ${count} or adLength ${adLength} out of range`);
  }
  for (let i = 0; i < count; i++) {
    if (
      !(offsets[i] >= 0 && lengths[i] >= adLength + AEAD_TAG_LENGTH &&
        offsets[i] + lengths[i] <= buffer.length)
    ) {
      throw new RangeError(`sealBatch: packet ${i} does not fit the buffer`);
    }
    if (!Number.isSafeInteger(counters[i]) || counters[i] < 0) {
      throw new RangeError(`sealBatch: counter ${counters[i]} is not in [0, 2^53)`);
    }
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
