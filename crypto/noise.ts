/**
 * Noise_XX_25519_ChaChaPoly_BLAKE2s (Noise Protocol Framework, revision 34).
 *
 * A synchronous, sans-IO implementation of the XX handshake pattern only:
 *
 * ```
 * XX:
 *   -> e
 *   <- e, ee, s, es
 *   -> s, se
 * ```
 *
 * It takes bytes and returns bytes; it never touches a socket, a clock or a
 * file. Malformed or forged input is reported as a value (`undefined` or a
 * `{ ok: false }` result) and leaves the handshake state exactly as it was.
 *
 * @module
 */

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";

/** The full Noise protocol name; its hash seeds the handshake. */
export const NOISE_PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/** Noise limits every message (handshake or transport) to 65535 bytes. */
export const NOISE_MAX_MESSAGE_LENGTH = 65535;

/** Length of an X25519 public key, and of a DH output (Noise `DHLEN`). */
const DHLEN = 32;
/** BLAKE2s output length (Noise `HASHLEN`). */
const HASHLEN = 32;
/** Poly1305 tag length. */
const TAGLEN = 16;
/** The nonce Noise reserves for Rekey(): 2^64 - 1. */
const MAX_NONCE = 0xffff_ffff_ffff_ffffn;

const EMPTY = new Uint8Array(0);

/** An X25519 key pair: 32-byte public key and 32-byte secret scalar. */
export interface X25519KeyPair {
  /** 32-byte Montgomery u-coordinate. */
  readonly publicKey: Uint8Array;
  /** 32-byte secret (clamped by X25519 when used). */
  readonly secretKey: Uint8Array;
}

/** Default randomness: WebCrypto's CSPRNG. */
function defaultRandom(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/**
 * Generate an X25519 key pair.
 *
 * @param random source of random bytes; defaults to `crypto.getRandomValues`.
 * @returns a fresh key pair.
 */
export function generateX25519KeyPair(
  random: (n: number) => Uint8Array = defaultRandom,
): X25519KeyPair {
  const secretKey = Uint8Array.from(random(32));
  if (secretKey.length !== 32) {
    throw new RangeError("random source returned the wrong number of bytes");
  }
  return { publicKey: x25519.getPublicKey(secretKey), secretKey };
}

/**
 * The Noise ChaChaPoly nonce: 32 bits of zeros followed by the 64-bit
 * little-endian counter.
 */
function nonceBytes(n: bigint): Uint8Array {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setBigUint64(4, n, true);
  return out;
}

/**
 * Noise `ENCRYPT(k, n, ad, plaintext)` for ChaChaPoly: ciphertext with the
 * 16-byte tag appended. This is the raw cipher function; it does not refuse
 * the reserved nonce 2^64-1 (Rekey needs it), callers keeping a counter must.
 *
 * @param key 32-byte key.
 * @param nonce counter in [0, 2^64-1].
 * @param ad associated data.
 * @param plaintext bytes to encrypt.
 * @returns ciphertext || tag.
 */
export function noiseEncrypt(
  key: Uint8Array,
  nonce: bigint,
  ad: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  return chacha20poly1305(key, nonceBytes(nonce), ad).encrypt(plaintext);
}

/**
 * Noise `DECRYPT(k, n, ad, ciphertext)` for ChaChaPoly.
 *
 * @param key 32-byte key.
 * @param nonce counter in [0, 2^64-1].
 * @param ad associated data.
 * @param ciphertext ciphertext || 16-byte tag.
 * @returns the plaintext, or `undefined` if the input is too short or fails
 *   authentication. Never throws on bad input.
 */
export function noiseDecrypt(
  key: Uint8Array,
  nonce: bigint,
  ad: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array | undefined {
  if (ciphertext.length < TAGLEN) return undefined;
  try {
    return chacha20poly1305(key, nonceBytes(nonce), ad).decrypt(ciphertext);
  } catch {
    return undefined;
  }
}

/**
 * Noise `Rekey(k)`: `ENCRYPT(k, maxnonce = 2^64-1, zero-length ad, 32 zero
 * bytes)`, keeping the first 32 bytes (the tag is dropped).
 *
 * @param key current 32-byte key.
 * @returns the next 32-byte key.
 */
export function noiseRekey(key: Uint8Array): Uint8Array {
  return noiseEncrypt(key, MAX_NONCE, EMPTY, new Uint8Array(32)).slice(0, 32);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Noise HKDF with HMAC-BLAKE2s, two outputs (all XX ever needs). */
function hkdf2(
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
): [Uint8Array, Uint8Array] {
  const tempKey = hmac(blake2s, chainingKey, inputKeyMaterial);
  const out1 = hmac(blake2s, tempKey, Uint8Array.of(0x01));
  const out2 = hmac(blake2s, tempKey, concat(out1, Uint8Array.of(0x02)));
  return [out1, out2];
}

/**
 * X25519 with the all-zero check: a low-order (or twist low-order) peer key
 * makes every clamped scalar land on zero, which Noise must treat as failure.
 */
function dh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(secretKey, publicKey);
  } catch {
    return undefined; // noble refuses low-order points itself
  }
  let acc = 0;
  for (const b of shared) acc |= b;
  return acc === 0 ? undefined : shared;
}

/**
 * The whole mutable state of a handshake. Byte arrays in it are never
 * written in place, only replaced, so a shallow copy is a full snapshot:
 * that is what lets a failed read leave the state untouched.
 */
interface State {
  /** Index of the next message of the pattern (0, 1, 2; 3 = done). */
  step: number;
  /** Chaining key. */
  ck: Uint8Array;
  /** Handshake hash. */
  h: Uint8Array;
  /** CipherState key, absent until the first MixKey. */
  k: Uint8Array | undefined;
  /** CipherState nonce counter. */
  n: bigint;
  /** Remote ephemeral public key. */
  re: Uint8Array | undefined;
  /** Remote static public key. */
  rs: Uint8Array | undefined;
  /**
   * Responder only: DH(e, re) computed while reading message 1, so that a
   * low-order `re` is rejected at read time instead of breaking the write.
   */
  eeForWrite: Uint8Array | undefined;
}

/** Why a handshake message was refused. */
export type NoiseReadFailure = "Malformed" | "Unauthenticated" | "UnexpectedMessage";

/** Result of {@link NoiseHandshake.tryReadMessage}. */
export type NoiseReadResult =
  | {
    readonly ok: true;
    /** Decrypted payload of the message. */
    readonly payload: Uint8Array;
    /** The handshake hash just before the payload was decrypted and hashed. */
    readonly handshakeHashBeforePayload: Uint8Array;
  }
  | {
    readonly ok: false;
    /** Malformed: wrong length or invalid key; Unauthenticated: AEAD failure. */
    readonly reason: NoiseReadFailure;
    /** Human-readable detail for logs. */
    readonly detail: string;
  };

/** Options for {@link NoiseHandshake}. */
export interface HandshakeOptions {
  /** true for the side that sends message 1. */
  initiator: boolean;
  /** Bytes both sides must agree on; mixed into the handshake hash. */
  prologue: Uint8Array;
  /** This side's static X25519 key pair (sent encrypted). */
  staticKeyPair: X25519KeyPair;
  /** Fixed ephemeral key pair, for test vectors only. Default: fresh random. */
  ephemeralKeyPair?: X25519KeyPair;
  /** Source of random bytes for the ephemeral key; default WebCrypto. */
  random?: (n: number) => Uint8Array;
}

function checkKeyPair(kp: X25519KeyPair, what: string): void {
  if (kp.publicKey.length !== DHLEN || kp.secretKey.length !== 32) {
    throw new RangeError(`${what} must have a 32-byte public and secret key`);
  }
}

/**
 * One side of a Noise_XX_25519_ChaChaPoly_BLAKE2s handshake.
 *
 * Drive it with {@link writeMessage} / {@link readMessage} in pattern order
 * ({@link isMyTurnToWrite} says which), then call {@link split} for the
 * transport keys.
 */
export class NoiseHandshake {
  readonly #initiator: boolean;
  readonly #s: X25519KeyPair;
  readonly #e: X25519KeyPair;
  #st: State;

  /**
   * Start a handshake: InitializeSymmetric(protocol name), MixHash(prologue).
   * The ephemeral key is drawn here, so later reads are pure functions of
   * the state.
   *
   * @param opts role, prologue and keys.
   * @throws RangeError if a key pair has the wrong lengths (programming error).
   */
  constructor(opts: HandshakeOptions) {
    checkKeyPair(opts.staticKeyPair, "staticKeyPair");
    if (opts.ephemeralKeyPair) checkKeyPair(opts.ephemeralKeyPair, "ephemeralKeyPair");
    this.#initiator = opts.initiator;
    this.#s = opts.staticKeyPair;
    this.#e = opts.ephemeralKeyPair ?? generateX25519KeyPair(opts.random);
    const name = new TextEncoder().encode(NOISE_PROTOCOL_NAME);
    // The name is 33 bytes > HASHLEN, so h = HASH(name) rather than padding.
    const h0 = name.length <= HASHLEN
      ? concat(name, new Uint8Array(HASHLEN - name.length))
      : blake2s(name);
    this.#st = {
      step: 0,
      ck: h0,
      h: blake2s(concat(h0, opts.prologue)),
      k: undefined,
      n: 0n,
      re: undefined,
      rs: undefined,
      eeForWrite: undefined,
    };
  }

  /**
   * An independent copy of this handshake (same keys, same state), so a
   * caller can try a read, inspect the payload, and only then commit.
   *
   * @returns the copy.
   */
  clone(): NoiseHandshake {
    const copy = new NoiseHandshake({
      initiator: this.#initiator,
      prologue: EMPTY,
      staticKeyPair: this.#s,
      ephemeralKeyPair: this.#e,
    });
    copy.#st = { ...this.#st };
    return copy;
  }

  /** true once all three messages have been written or read. */
  get isComplete(): boolean {
    return this.#st.step >= 3;
  }

  /** true when the next pattern message is ours to send. */
  get isMyTurnToWrite(): boolean {
    if (this.isComplete) return false;
    const initiatorTurn = this.#st.step % 2 === 0;
    return initiatorTurn === this.#initiator;
  }

  /** The peer's static X25519 key, once received (message 2 or 3). */
  get remoteStaticPublicKey(): Uint8Array | undefined {
    return this.#st.rs?.slice();
  }

  /** This side's static X25519 public key. */
  get localStaticPublicKey(): Uint8Array {
    return this.#s.publicKey.slice();
  }

  /** The current handshake hash `h` (the channel binding once complete). */
  get handshakeHash(): Uint8Array {
    return this.#st.h.slice();
  }

  /**
   * Write the next handshake message.
   *
   * @param payload the payload bytes, or a function of the handshake hash as
   *   it stands just before the payload is encrypted (to sign the transcript).
   * @returns the message to send.
   * @throws Error if it is not our turn or the message would exceed 65535
   *   bytes (programming errors, not input errors).
   */
  writeMessage(payload: Uint8Array | ((handshakeHash: Uint8Array) => Uint8Array)): Uint8Array {
    if (!this.isMyTurnToWrite) throw new Error("NoiseHandshake: not our turn to write");
    const st = { ...this.#st };
    const out: Uint8Array[] = [];
    const e = this.#e;
    const s = this.#s;
    if (st.step === 0) {
      // -> e
      out.push(e.publicKey);
      mixHash(st, e.publicKey);
    } else if (st.step === 1) {
      // <- e, ee, s, es
      out.push(e.publicKey);
      mixHash(st, e.publicKey);
      mixKey(st, must(st.eeForWrite));
      st.eeForWrite = undefined;
      out.push(encryptAndHash(st, s.publicKey));
      mixKey(st, must(dh(s.secretKey, must(st.re))));
    } else {
      // -> s, se
      out.push(encryptAndHash(st, s.publicKey));
      mixKey(st, must(dh(s.secretKey, must(st.re))));
    }
    const body = typeof payload === "function" ? payload(st.h.slice()) : payload;
    out.push(encryptAndHash(st, body));
    const message = concat(...out);
    if (message.length > NOISE_MAX_MESSAGE_LENGTH) {
      throw new Error("NoiseHandshake: message exceeds 65535 bytes");
    }
    st.step += 1;
    this.#st = st;
    return message;
  }

  /**
   * Read the peer's next handshake message.
   *
   * @param message the received bytes.
   * @returns the payload and the handshake hash just before it, or
   *   `undefined` when the message is malformed or fails authentication. In
   *   that case the state is exactly as before, so a forged message cannot
   *   break a handshake that can still complete.
   */
  readMessage(
    message: Uint8Array,
  ): { payload: Uint8Array; handshakeHashBeforePayload: Uint8Array } | undefined {
    const r = this.tryReadMessage(message);
    return r.ok
      ? { payload: r.payload, handshakeHashBeforePayload: r.handshakeHashBeforePayload }
      : undefined;
  }

  /**
   * Like {@link readMessage}, but says why a message was refused.
   *
   * @param message the received bytes.
   * @returns the result; on failure the state is unchanged.
   */
  tryReadMessage(message: Uint8Array): NoiseReadResult {
    if (this.isComplete || this.isMyTurnToWrite) {
      return {
        ok: false,
        reason: "UnexpectedMessage",
        detail: "not expecting a handshake message now",
      };
    }
    if (message.length > NOISE_MAX_MESSAGE_LENGTH) {
      return { ok: false, reason: "Malformed", detail: "message exceeds 65535 bytes" };
    }
    const st = { ...this.#st };
    let rest = message;
    const take = (n: number): Uint8Array | undefined => {
      if (rest.length < n) return undefined;
      const part = rest.slice(0, n);
      rest = rest.subarray(n);
      return part;
    };
    const fail = (reason: NoiseReadFailure, detail: string): NoiseReadResult => ({
      ok: false,
      reason,
      detail,
    });

    if (st.step === 0) {
      // -> e (responder reading)
      const re = take(DHLEN);
      if (!re) return fail("Malformed", "message 1 shorter than an ephemeral key");
      st.re = re;
      mixHash(st, re);
      const ee = dh(this.#e.secretKey, re);
      if (!ee) return fail("Malformed", "low-order ephemeral key");
      st.eeForWrite = ee;
    } else if (st.step === 1) {
      // <- e, ee, s, es (initiator reading)
      const re = take(DHLEN);
      if (!re) return fail("Malformed", "message 2 too short");
      st.re = re;
      mixHash(st, re);
      const ee = dh(this.#e.secretKey, re);
      if (!ee) return fail("Malformed", "low-order ephemeral key");
      mixKey(st, ee);
      const encS = take(DHLEN + TAGLEN);
      if (!encS) return fail("Malformed", "message 2 too short");
      const rs = decryptAndHash(st, encS);
      if (!rs) return fail("Unauthenticated", "static key failed authentication");
      st.rs = rs;
      const es = dh(this.#e.secretKey, rs);
      if (!es) return fail("Malformed", "low-order static key");
      mixKey(st, es);
    } else {
      // -> s, se (responder reading)
      const encS = take(DHLEN + TAGLEN);
      if (!encS) return fail("Malformed", "message 3 too short");
      const rs = decryptAndHash(st, encS);
      if (!rs) return fail("Unauthenticated", "static key failed authentication");
      st.rs = rs;
      const se = dh(this.#e.secretKey, rs);
      if (!se) return fail("Malformed", "low-order static key");
      mixKey(st, se);
    }
    const hBefore = st.h;
    if (st.k && rest.length < TAGLEN) return fail("Malformed", "payload shorter than its tag");
    const payload = decryptAndHash(st, rest.slice());
    if (!payload) return fail("Unauthenticated", "payload failed authentication");
    st.step += 1;
    this.#st = st;
    return { ok: true, payload, handshakeHashBeforePayload: hBefore.slice() };
  }

  /**
   * Noise Split(): the two transport keys, from this side's point of view.
   * The initiator sends with the first key (k1) and receives with the second
   * (k2); the responder the other way round. Nonces start at 0 for each.
   *
   * @returns `{ sendKey, recvKey }`, 32 bytes each.
   * @throws Error if the handshake is not complete (programming error).
   */
  split(): { sendKey: Uint8Array; recvKey: Uint8Array } {
    if (!this.isComplete) throw new Error("NoiseHandshake: split() before completion");
    const [k1, k2] = hkdf2(this.#st.ck, EMPTY);
    return this.#initiator ? { sendKey: k1, recvKey: k2 } : { sendKey: k2, recvKey: k1 };
  }
}

/** Internal invariant: a value checked at read time is present at write time. */
function must<T>(v: T | undefined): T {
  if (v === undefined) throw new Error("NoiseHandshake: internal state invariant broken");
  return v;
}

function mixHash(st: State, data: Uint8Array): void {
  st.h = blake2s(concat(st.h, data));
}

function mixKey(st: State, ikm: Uint8Array): void {
  const [ck, k] = hkdf2(st.ck, ikm);
  st.ck = ck;
  st.k = k; // HASHLEN == 32, no truncation needed
  st.n = 0n;
}

function encryptAndHash(st: State, plaintext: Uint8Array): Uint8Array {
  let ciphertext = plaintext;
  if (st.k) {
    ciphertext = noiseEncrypt(st.k, st.n, st.h, plaintext);
    st.n += 1n;
  }
  mixHash(st, ciphertext);
  return ciphertext;
}

function decryptAndHash(st: State, ciphertext: Uint8Array): Uint8Array | undefined {
  let plaintext: Uint8Array | undefined = ciphertext;
  if (st.k) {
    plaintext = noiseDecrypt(st.k, st.n, st.h, ciphertext);
    if (!plaintext) return undefined;
    st.n += 1n;
  }
  mixHash(st, ciphertext);
  return plaintext;
}
