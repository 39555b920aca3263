/**
 * The peer's side of a relay binding, sans-IO: when to send BIND_REQUEST,
 * what the relay's answers mean. The host or client owns the socket; it asks
 * {@linkcode PeerBinding.poll} for a datagram to send to the relay, hands
 * datagrams from the relay with a first byte 0x40–0x4F to
 * {@linkcode PeerBinding.handle}, and wakes at {@linkcode PeerBinding.pollTimeout}.
 *
 * It repeats its request every `retryMs` until the relay answers "both
 * bound" (state 2), so a peer learns when the other arrives; it gives up
 * after `timeoutMs` without that, or at the first BIND_ERROR for which retrying
 * cannot help. See docs/RELAY.md.
 *
 * @module
 */

import type { IdentityKeyPair } from "../crypto/identity.ts";
import {
  BIND_ACK,
  BIND_ERROR,
  type BindErrorKind,
  BindState,
  decodeBindAck,
  decodeBindError,
  encodeBindRequest,
} from "./wire.ts";

/** Where a peer's binding stands. */
export type PeerBindingState =
  | { state: "binding" }
  | { state: "waiting-for-peer" }
  | { state: "ready"; idleTimeoutMs: number }
  | { state: "failed"; kind: BindErrorKind | "Timeout" };

/** Options of {@linkcode PeerBinding}. */
export interface PeerBindingOptions {
  /** The lease the gateway gave this peer. */
  lease: string;
  /** This peer's identity (one of the lease's peers). */
  identity: IdentityKeyPair;
  /** Resend period until "ready" (ms); default 500. */
  retryMs?: number;
  /** Give up when not "ready" after this long (ms); default 10,000. */
  timeoutMs?: number;
  /** Random bytes; defaults to `crypto.getRandomValues`. */
  random?: (n: number) => Uint8Array;
}

/** Errors worth retrying: the relay was busy or our clock was off by a little. */
const TRANSIENT: ReadonlySet<BindErrorKind> = new Set(["TableFull", "BindStale"]);

/** One peer's binding at one relay. */
export class PeerBinding {
  readonly #o: Required<Omit<PeerBindingOptions, "random">> & {
    random: (n: number) => Uint8Array;
  };
  #status: PeerBindingState = { state: "binding" };
  #startedAt: number | undefined;
  #nextSendAt: number | undefined;
  #lastTimestamp = 0;
  /** Nonces of requests in flight: an answer must echo one of them. */
  readonly #nonces: string[] = [];
  /** Requests sent. */
  requestsSent = 0;

  /** @param options lease, identity and timing. */
  constructor(options: PeerBindingOptions) {
    this.#o = {
      retryMs: 500,
      timeoutMs: 10_000,
      random: (n) => crypto.getRandomValues(new Uint8Array(n)),
      ...options,
    };
  }

  /** Where the binding stands. */
  get status(): PeerBindingState {
    return this.#status;
  }

  /**
   * A BIND_REQUEST to send to the relay now, if one is due.
   *
   * @param nowMs wall-clock ms since the Unix epoch (the relay checks it against its own).
   */
  poll(nowMs: number): Uint8Array | undefined {
    const s = this.#status.state;
    if (s === "ready" || s === "failed") return undefined;
    this.#startedAt ??= nowMs;
    if (nowMs - this.#startedAt >= this.#o.timeoutMs) {
      this.#status = { state: "failed", kind: "Timeout" };
      return undefined;
    }
    if (this.#nextSendAt !== undefined && nowMs < this.#nextSendAt) return undefined;
    // Timestamps must increase strictly: the relay refuses a repeat as a replay.
    const ts = Math.max(Math.floor(nowMs), this.#lastTimestamp + 1);
    this.#lastTimestamp = ts;
    const nonce = this.#o.random(8);
    this.#nonces.push(key(nonce));
    if (this.#nonces.length > 32) this.#nonces.shift();
    this.#nextSendAt = nowMs + this.#o.retryMs;
    this.requestsSent++;
    return encodeBindRequest(this.#o.lease, this.#o.identity, ts, nonce);
  }

  /** When {@linkcode PeerBinding.poll} next has something to do, or undefined. */
  pollTimeout(): number | undefined {
    const s = this.#status.state;
    if (s === "ready" || s === "failed" || this.#startedAt === undefined) return undefined;
    return Math.min(this.#nextSendAt ?? 0, this.#startedAt + this.#o.timeoutMs);
  }

  /**
   * Handles a datagram from the relay. Returns whether it was a relay answer
   * to one of our requests (anything else, including answers with an unknown
   * nonce, is ignored and changes nothing).
   */
  handle(bytes: Uint8Array): boolean {
    if (bytes[0] === BIND_ACK) {
      const ack = decodeBindAck(bytes);
      if (ack === undefined || !this.#nonces.includes(key(ack.nonce))) return false;
      if (this.#status.state === "ready" || this.#status.state === "failed") return true;
      if (ack.state === BindState.Ready) {
        this.#status = { state: "ready", idleTimeoutMs: ack.idleTimeoutMs };
      } else {
        this.#status = { state: "waiting-for-peer" };
      }
      return true;
    }
    if (bytes[0] === BIND_ERROR) {
      const e = decodeBindError(bytes);
      if (e === undefined || !this.#nonces.includes(key(e.nonce))) return false;
      if (this.#status.state === "ready" || this.#status.state === "failed") return true;
      // An unauthenticated answer: only give up on errors that retrying cannot fix.
      if (e.kind !== "Unknown" && !TRANSIENT.has(e.kind)) {
        this.#status = { state: "failed", kind: e.kind };
      }
      return true;
    }
    return false;
  }
}

function key(nonce: Uint8Array): string {
  return Array.from(nonce, (b) => b.toString(16).padStart(2, "0")).join("");
}
