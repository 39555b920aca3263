/**
 * RIFT packet protection after the handshake: ChaCha20-Poly1305 over each
 * datagram with the 16-byte RIFT header as associated data, a replay window
 * per direction, and key updates with a QUIC-style key-phase bit.
 *
 * Datagram layout: `header(16) || ciphertext || tag(16)`. The nonce is
 * {@linkcode nonceFromCounter}(packet number). Packet numbers start at 0 in
 * each direction and only increase, across key updates too, so one replay
 * window covers every key phase.
 *
 * Sans-IO: the caller passes the time (`now`, milliseconds) into every call.
 * The header codec lives in `core/`; this module only sees the header bytes
 * and the packet number and key phase the caller parsed from them.
 *
 * @module
 */

import {
  type Aead,
  type AeadBackend,
  type AeadBatch,
  createAead,
  DEFAULT_AEAD_BACKEND,
  nonceFromCounter,
} from "./aead.ts";
import { noiseRekey as rekey } from "./noise.ts";
import { ReplayWindow } from "./replay.ts";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";

/** Length of the RIFT header that is authenticated as associated data. */
export const HEADER_LENGTH = 16;
/** Length of the Poly1305 tag at the end of every datagram. */
export const TAG_LENGTH = 16;
/** Largest packet number that may be sealed (2^53 - 1). */
export const MAX_PACKET_NUMBER: number = Number.MAX_SAFE_INTEGER;

/** Tunables of a {@linkcode PacketProtector}. */
export interface TransportConfig {
  /** Sender switches to the next key after this many packets under one key. */
  rekeyAfterPackets: number;
  /** Sender switches to the next key this long (ms) after installing the current one. */
  rekeyAfterMs: number;
  /**
   * A packet-count rekey waits until the current key is at least this old
   * (ms). The receiver only knows the next key, never the one after it, so two
   * updates within one reordering depth would strand packets; one update per
   * interval keeps every phase change further apart than any reordering.
   */
  minRekeyIntervalMs: number;
  /** Replay window size in packets (see {@linkcode ReplayWindow}). */
  replayWindow: number;
  /** How long (ms) the receiver keeps the previous key for reordered packets. */
  previousKeyRetentionMs: number;
  /** ChaCha20-Poly1305 implementation. */
  backend: AeadBackend;
  /**
   * Last packet number that may be sealed; `seal` reports "Exhausted" after
   * it. Defaults to (and may not exceed) 2^53 - 1; lower it only to test or to
   * force earlier re-handshakes.
   */
  maxPacketNumber: number;
}

/**
 * Defaults: rekey every 2^30 packets or 2 minutes, 2048-packet window, 3 s
 * previous-key retention, the faster AEAD backend, packet numbers up to 2^53 - 1.
 */
export const DEFAULT_TRANSPORT_CONFIG: TransportConfig = Object.freeze({
  rekeyAfterPackets: 2 ** 30,
  rekeyAfterMs: 120_000,
  minRekeyIntervalMs: 1_000,
  replayWindow: 2048,
  previousKeyRetentionMs: 3_000,
  backend: DEFAULT_AEAD_BACKEND,
  maxPacketNumber: MAX_PACKET_NUMBER,
});

/** Transport keys of one session, as the handshake's Noise `Split()` returns them. */
export interface TransportKeys {
  /** Key for what this side sends. */
  sendKey: Uint8Array;
  /** Key for what this side receives. */
  recvKey: Uint8Array;
}

/** Label of the media lane's key derivation (see docs/CRYPTO.md). */
export const MEDIA_LANE_LABEL = "RIFT v1 media lane";

/**
 * Keys of a separate lane of the same session: `HMAC-BLAKE2s(k, label)` of
 * each transport key. A lane has its own packet numbers and key phases, so a
 * second thread can seal (or open) it without sharing a nonce counter with
 * the session lane; a keyed PRF over a fixed label makes the lane keys
 * independent of the session keys and of each other.
 */
export function deriveLaneKeys(keys: TransportKeys, label: string): TransportKeys {
  const info = new TextEncoder().encode(label);
  return {
    sendKey: hmac(blake2s, keys.sendKey, info),
    recvKey: hmac(blake2s, keys.recvKey, info),
  };
}

/** Why {@linkcode PacketProtector.open} rejected a datagram. */
export type OpenErrorKind = "Unauthenticated" | "Replayed" | "TooOld";

/** Result of {@linkcode PacketProtector.seal}. */
export type SealResult =
  | { ok: true; datagram: Uint8Array; packetNumber: number }
  | { ok: false; kind: "Exhausted" };

/** Result of {@linkcode PacketProtector.open}. */
export type OpenResult =
  | { ok: true; plaintext: Uint8Array; commit(): void }
  | { ok: false; kind: OpenErrorKind };

/** Counters exposed for metrics. */
export interface TransportStats {
  /** Datagrams sealed. */
  sealed: number;
  /** Datagrams opened and committed. */
  opened: number;
  /** Send-side key updates. */
  rekeys: number;
  /** Receive-side key rotations (peer's key updates we followed). */
  receiveKeyRotations: number;
}

interface KeyState {
  readonly key: Uint8Array;
  readonly aead: Aead;
}

function validateConfig(c: TransportConfig): void {
  const positiveInt = (name: string, v: number) => {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
  };
  positiveInt("rekeyAfterPackets", c.rekeyAfterPackets);
  if (!(c.minRekeyIntervalMs >= 0)) {
    throw new RangeError(`minRekeyIntervalMs must be >= 0, got ${c.minRekeyIntervalMs}`);
  }
  if (!(c.rekeyAfterMs > 0)) {
    throw new RangeError(`rekeyAfterMs must be > 0, got ${c.rekeyAfterMs}`);
  }
  positiveInt("replayWindow", c.replayWindow);
  if (
    !Number.isSafeInteger(c.maxPacketNumber) || c.maxPacketNumber < 0
  ) {
    throw new RangeError(
      `maxPacketNumber must be an integer in [0, 2^53 - 1], got ${c.maxPacketNumber}`,
    );
  }
  if (!(c.previousKeyRetentionMs >= 0)) {
    throw new RangeError(
      `previousKeyRetentionMs must be >= 0, got ${c.previousKeyRetentionMs}`,
    );
  }
}

/**
 * Seals outgoing and opens incoming RIFT datagrams for one session.
 *
 * Key updates use Noise `Rekey` (`noiseRekey` in crypto/noise.ts):
 * `next = ENCRYPT(k, nonce 2^64 - 1, empty ad, 32 zero bytes)[:32]`.
 *
 * Receive key schedule (as QUIC): the receiver holds the previous, current and
 * next keys. A packet whose key phase equals the current phase is opened with
 * the current key; otherwise, if its packet number is below the lowest one
 * seen in the current phase it is opened with the previous key (kept for
 * {@linkcode TransportConfig.previousKeyRetentionMs} after the rotation), else
 * with the next key. Committing a packet opened with the next key rotates:
 * `prev = cur, cur = next, next = rekey(next)`.
 */
export class PacketProtector {
  readonly #config: TransportConfig;

  // send side
  #send: KeyState;
  #sendPhase: 0 | 1 = 0;
  #nextPacketNumber = 0;
  #sendKeyInstalledAt: number;
  #packetsUnderSendKey = 0;

  // receive side
  #recvPrev: KeyState | undefined;
  #recvPrevExpiresAt = -Infinity;
  #recvCur: KeyState;
  #recvNext: KeyState;
  #recvPhase: 0 | 1 = 0;
  #lowestPnInRecvPhase = 0;
  readonly #window: ReplayWindow;
  // Scratch nonces: the AEAD reads them synchronously, so one per direction is enough.
  readonly #sendNonce = new Uint8Array(12);
  readonly #recvNonce = new Uint8Array(12);

  #stats: TransportStats = {
    sealed: 0,
    opened: 0,
    rekeys: 0,
    receiveKeyRotations: 0,
  };

  /**
   * Creates the protector for one session, right after the handshake.
   *
   * @param keys the 32-byte transport keys from the handshake (copied).
   * @param now current time in milliseconds; starts the send key's age.
   * @param config overrides of {@linkcode DEFAULT_TRANSPORT_CONFIG}.
   * @throws {RangeError} on keys that are not 32 bytes or an invalid config.
   */
  constructor(
    keys: TransportKeys,
    now: number,
    config: Partial<TransportConfig> = {},
  ) {
    this.#config = { ...DEFAULT_TRANSPORT_CONFIG, ...config };
    validateConfig(this.#config);
    this.#send = this.#keyState(keys.sendKey.slice());
    this.#sendKeyInstalledAt = now;
    this.#recvCur = this.#keyState(keys.recvKey.slice());
    this.#recvNext = this.#keyState(rekey(this.#recvCur.key));
    this.#window = new ReplayWindow(this.#config.replayWindow);
  }

  /** Counters for metrics (a snapshot). */
  get stats(): TransportStats {
    return { ...this.#stats };
  }

  /**
   * Allocates the next packet number and key phase (updating the send key
   * first if it is due), has `writeHeader` write the 16-byte header of that
   * packet into `out` (the first 16 bytes of the datagram), and seals
   * `plaintext` behind it with the header as associated data.
   *
   * Returns `{ ok: false, kind: "Exhausted" }` once packet numbers would pass
   * 2^53 - 1; the session must then be re-established.
   */
  seal(
    writeHeader: (packetNumber: number, keyPhase: 0 | 1, out: Uint8Array) => void,
    plaintext: Uint8Array,
    now: number,
  ): SealResult {
    const pn = this.#nextPacketNumber;
    if (pn > this.#config.maxPacketNumber) {
      return { ok: false, kind: "Exhausted" };
    }
    this.#maybeRekey(now);
    // Header and seal go straight into the datagram: one allocation per packet.
    const datagram = new Uint8Array(HEADER_LENGTH + plaintext.length + TAG_LENGTH);
    const header = datagram.subarray(0, HEADER_LENGTH);
    writeHeader(pn, this.#sendPhase, header);
    this.#send.aead.sealInto(
      nonceFromCounter(pn, this.#sendNonce),
      plaintext,
      header,
      datagram,
      HEADER_LENGTH,
    );
    this.#nextPacketNumber = pn + 1;
    this.#packetsUnderSendKey++;
    this.#stats.sealed++;
    return { ok: true, datagram, packetNumber: pn };
  }

  /**
   * Seals `batch.count` datagrams laid out in `batch.buffer` in place, with
   * one AEAD batch call per key: datagram i is
   * `buffer[offsets[i], offsets[i] + lengths[i])`, its first 16 bytes the
   * header (written by `writeHeader(packetNumber, keyPhase, buffer, offset)`),
   * then the plaintext, then 16 bytes of room for the tag. Packet numbers,
   * key phases and key updates are exactly those of `count` calls to
   * {@linkcode PacketProtector.seal} at `now`; `batch.counters` is filled with
   * the packet numbers used. Returns how many were sealed (fewer than asked
   * only once packet numbers are exhausted) and the first packet number.
   */
  sealBatch(
    writeHeader: (
      packetNumber: number,
      keyPhase: 0 | 1,
      buffer: Uint8Array,
      offset: number,
    ) => void,
    batch: AeadBatch,
    now: number,
  ): { sealed: number; firstPacketNumber: number } {
    const firstPacketNumber = this.#nextPacketNumber;
    const available = Math.max(0, this.#config.maxPacketNumber - firstPacketNumber + 1);
    const total = Math.min(batch.count, available);
    let done = 0;
    while (done < total) {
      // The same rekey decision seal() takes before each packet; it can only fire at a run's start.
      this.#maybeRekey(now);
      const intervalPassed = now - this.#sendKeyInstalledAt >= this.#config.minRekeyIntervalMs;
      const run = intervalPassed
        ? Math.min(
          total - done,
          Math.max(1, this.#config.rekeyAfterPackets - this.#packetsUnderSendKey),
        )
        : total - done;
      for (let i = done; i < done + run; i++) {
        const pn = this.#nextPacketNumber++;
        batch.counters[i] = pn;
        writeHeader(pn, this.#sendPhase, batch.buffer, batch.offsets[i]);
      }
      const part: AeadBatch = done === 0 && run === batch.count ? batch : {
        buffer: batch.buffer,
        offsets: batch.offsets.subarray(done, done + run),
        lengths: batch.lengths.subarray(done, done + run),
        counters: batch.counters.subarray(done, done + run),
        count: run,
      };
      this.#send.aead.sealBatch(part, HEADER_LENGTH);
      this.#packetsUnderSendKey += run;
      this.#stats.sealed += run;
      done += run;
    }
    return { sealed: done, firstPacketNumber };
  }

  #maybeRekey(now: number): void {
    if (
      (this.#packetsUnderSendKey >= this.#config.rekeyAfterPackets &&
        now - this.#sendKeyInstalledAt >= this.#config.minRekeyIntervalMs) ||
      now - this.#sendKeyInstalledAt >= this.#config.rekeyAfterMs
    ) {
      this.#send = this.#keyState(rekey(this.#send.key));
      this.#sendPhase = this.#sendPhase === 0 ? 1 : 0;
      this.#sendKeyInstalledAt = now;
      this.#packetsUnderSendKey = 0;
      this.#stats.rekeys++;
    }
  }

  /** The key phase a datagram must carry for {@linkcode PacketProtector.openCurrentBatch}. */
  get receivePhase(): 0 | 1 {
    return this.#recvPhase;
  }

  /**
   * {@linkcode PacketProtector.open} for many datagrams at once, all carrying
   * the current receive key phase ({@linkcode receivePhase}; route the others
   * through `open`): `batch.counters[i]` is datagram i's packet number, its
   * first 16 bytes the header. Datagrams with `ok[i]` = 1 are checked against
   * the replay window, then opened in one AEAD call, their plaintext written
   * to `dst` at `dstOffsets[i]`. On return `ok[i]` is 1 for each that
   * authenticated, and `kinds[i]` says why any other was rejected. Changes no
   * state: accept each with {@linkcode commitCurrent}, in order.
   */
  openCurrentBatch(
    batch: AeadBatch,
    dst: Uint8Array,
    dstOffsets: Int32Array,
    ok: Uint8Array,
    kinds: (OpenErrorKind | undefined)[],
  ): void {
    for (let i = 0; i < batch.count; i++) {
      kinds[i] = undefined;
      if (ok[i] !== 1) continue;
      const check = this.#window.check(batch.counters[i]);
      if (check !== "ok") {
        ok[i] = 0;
        kinds[i] = check === "replayed" ? "Replayed" : "TooOld";
      } else if (batch.lengths[i] < HEADER_LENGTH + TAG_LENGTH) {
        ok[i] = 0;
        kinds[i] = "Unauthenticated";
      }
    }
    const asked = ok.slice(0, batch.count);
    this.#recvCur.aead.openBatch(batch, HEADER_LENGTH, dst, dstOffsets, ok);
    for (let i = 0; i < batch.count; i++) {
      if (asked[i] === 1 && ok[i] !== 1) kinds[i] = "Unauthenticated";
    }
  }

  /** Why the replay window rejects `packetNumber` now, or undefined when it would accept it. */
  replayKind(packetNumber: number): "Replayed" | "TooOld" | undefined {
    const check = this.#window.check(packetNumber);
    return check === "ok" ? undefined : check === "replayed" ? "Replayed" : "TooOld";
  }

  /**
   * Accepts a datagram {@linkcode openCurrentBatch} authenticated, as the
   * `commit()` of `open` does; returns "Replayed" or "TooOld" instead when
   * a datagram committed since (e.g. a duplicate in the same batch) rules it
   * out now.
   */
  commitCurrent(packetNumber: number, now: number): OpenErrorKind | undefined {
    const check = this.#window.check(packetNumber);
    if (check !== "ok") return check === "replayed" ? "Replayed" : "TooOld";
    this.#commit(this.#recvCur, packetNumber, now);
    return undefined;
  }

  /**
   * Authenticates and decrypts one datagram. `header` is its first 16 bytes,
   * `packetNumber` and `keyPhase` the values the caller parsed from that
   * header, and `sealed` the rest of the datagram (ciphertext and tag).
   *
   * Changes no state: the packet counts as received (replay window, key
   * rotation, stats) only when the returned `commit()` is called, so the
   * caller can parse the plaintext first and drop it without side effects.
   * Call `commit()` at most once, before opening further packets. Never throws.
   */
  open(
    header: Uint8Array,
    packetNumber: number,
    keyPhase: 0 | 1,
    sealed: Uint8Array,
    now: number,
  ): OpenResult {
    if (header.length !== HEADER_LENGTH || sealed.length < TAG_LENGTH) {
      return { ok: false, kind: "Unauthenticated" };
    }
    if (keyPhase !== 0 && keyPhase !== 1) {
      return { ok: false, kind: "Unauthenticated" };
    }
    const replay = this.#window.check(packetNumber);
    if (replay === "replayed") return { ok: false, kind: "Replayed" };
    if (replay === "too-old") return { ok: false, kind: "TooOld" };

    let state: KeyState | undefined;
    if (keyPhase === this.#recvPhase) {
      state = this.#recvCur;
    } else if (packetNumber < this.#lowestPnInRecvPhase) {
      state = now <= this.#recvPrevExpiresAt ? this.#recvPrev : undefined;
    } else {
      state = this.#recvNext;
    }
    if (state === undefined) return { ok: false, kind: "Unauthenticated" };

    const plaintext = state.aead.open(
      nonceFromCounter(packetNumber, this.#recvNonce),
      sealed,
      header,
    );
    if (plaintext === undefined) return { ok: false, kind: "Unauthenticated" };

    const used = state;
    let committed = false;
    return {
      ok: true,
      plaintext,
      commit: () => {
        if (committed) return;
        committed = true;
        this.#commit(used, packetNumber, now);
      },
    };
  }

  #commit(used: KeyState, pn: number, now: number): void {
    if (this.#window.check(pn) !== "ok") return; // a duplicate committed meanwhile
    this.#window.commit(pn);
    this.#stats.opened++;
    if (now > this.#recvPrevExpiresAt) this.#recvPrev = undefined;
    if (used === this.#recvNext) {
      this.#recvPrev = this.#recvCur;
      this.#recvPrevExpiresAt = now + this.#config.previousKeyRetentionMs;
      this.#recvCur = this.#recvNext;
      this.#recvNext = this.#keyState(rekey(this.#recvCur.key));
      this.#recvPhase = this.#recvPhase === 0 ? 1 : 0;
      this.#lowestPnInRecvPhase = pn;
      this.#stats.receiveKeyRotations++;
    } else if (used === this.#recvCur && pn < this.#lowestPnInRecvPhase) {
      this.#lowestPnInRecvPhase = pn;
    }
  }

  #keyState(key: Uint8Array): KeyState {
    if (key.length !== 32) {
      throw new RangeError(`transport keys must be 32 bytes, got ${key.length}`);
    }
    return { key, aead: createAead(key, this.#config.backend) };
  }
}
