/**
 * Sans-IO STUN client transactions (RFC 8489 §6.2.1): send a request,
 * retransmit on a doubling RTO, match the response by transaction id, give
 * up after a bounded time. {@linkcode StunBindingClient} wraps one Binding
 * transaction and returns the server-reflexive (mapped) address.
 *
 * No clock and no socket: the caller passes `now` (ms, any monotonic
 * origin), sends what {@linkcode StunTransaction.pollTransmit} returns, feeds
 * datagrams to `handleResponse`, and wakes up at `pollTimeout()`.
 *
 * @module
 */

import type { TransportAddress } from "./ip.ts";
import {
  type DecodedStun,
  decodeStun,
  encodeStun,
  findAttribute,
  mappedAddressOf,
  newTransactionId,
  sameTransactionId,
  type StunAttribute,
  StunClass,
  StunMethod,
} from "./message.ts";

/** Retransmission parameters (RFC 8489 §6.2.1). */
export interface RetransmitTiming {
  /** Initial retransmission timeout, ms. Default 500 (RFC 8489's recommendation). */
  rto?: number;
  /** Total transmissions (Rc). Default 7. */
  rc?: number;
  /** After the last transmission wait `rm × rto` before giving up. Default 16. */
  rm?: number;
}

/** How long a transaction with `timing` may last at most, ms (from first send to give-up). */
export function transactionDeadline(timing: RetransmitTiming = {}): number {
  const rto = timing.rto ?? 500, rc = timing.rc ?? 7, rm = timing.rm ?? 16;
  // Sends at 0, rto, 3rto, 7rto, ... (doubling gaps), then rm × rto after the last.
  return rto * (2 ** (rc - 1) - 1) + rm * rto;
}

/** State of a {@linkcode StunTransaction}. */
export type TransactionState = "pending" | "answered" | "timedOut";

/**
 * One client transaction: the request bytes, their retransmission schedule
 * and the response that ends it.
 */
export class StunTransaction {
  /** The encoded request. */
  readonly request: Uint8Array;
  /** Its transaction id. */
  readonly transactionId: Uint8Array;
  /** Where the request goes. */
  readonly to: TransportAddress;
  readonly #rto: number;
  readonly #rc: number;
  readonly #rm: number;
  #sent = 0;
  #nextAt: number;
  #gap: number;
  #firstSentAt = -1;
  #state: TransactionState = "pending";
  #response?: DecodedStun;
  #rttMs = -1;

  /**
   * @param request encoded request (its transaction id is read from bytes 8–20)
   * @param to destination
   * @param now current time, ms: the first transmission is due now
   * @throws {RangeError} if the timing is not positive integers / the request too short
   */
  constructor(
    request: Uint8Array,
    to: TransportAddress,
    now: number,
    timing: RetransmitTiming = {},
  ) {
    if (request.length < 20) throw new RangeError("request shorter than a STUN header");
    this.#rto = timing.rto ?? 500;
    this.#rc = timing.rc ?? 7;
    this.#rm = timing.rm ?? 16;
    if (!(this.#rto > 0) || !(this.#rc >= 1) || !(this.#rm > 0)) {
      throw new RangeError("rto, rc and rm must be positive");
    }
    this.request = request;
    this.transactionId = request.slice(8, 20);
    this.to = to;
    this.#nextAt = now;
    this.#gap = this.#rto;
  }

  /** Current state. */
  get state(): TransactionState {
    return this.#state;
  }

  /** The response (success or error) once answered. */
  get response(): DecodedStun | undefined {
    return this.#response;
  }

  /** Transmissions so far. */
  get transmissions(): number {
    return this.#sent;
  }

  /** Time from the first transmission to the response, ms (-1 until answered). */
  get rttMs(): number {
    return this.#rttMs;
  }

  /** When the transaction next needs the caller (send or give up), or `undefined` when over. */
  pollTimeout(): number | undefined {
    return this.#state === "pending" ? this.#nextAt : undefined;
  }

  /**
   * The request bytes if a (re)transmission is due at `now`, else
   * `undefined`. Also ends the transaction (`timedOut`) once the last wait
   * has passed.
   */
  pollTransmit(now: number): Uint8Array | undefined {
    if (this.#state !== "pending" || now < this.#nextAt) return undefined;
    if (this.#sent >= this.#rc) {
      this.#state = "timedOut";
      return undefined;
    }
    if (this.#sent === 0) this.#firstSentAt = now;
    this.#sent++;
    if (this.#sent < this.#rc) {
      this.#nextAt = now + this.#gap;
      this.#gap *= 2;
    } else {
      this.#nextAt = now + this.#rm * this.#rto;
    }
    return this.request;
  }

  /** Same as polling at `now` without sending: advances to `timedOut` when due. */
  handleTimeout(now: number): void {
    if (this.#state === "pending" && this.#sent >= this.#rc && now >= this.#nextAt) {
      this.#state = "timedOut";
    }
  }

  /**
   * Offers a datagram. Returns `true` if it is the response to this
   * transaction (a well-formed success or error response with this
   * transaction id), which ends it; `false` otherwise (not consumed).
   * Never throws.
   */
  handleResponse(bytes: Uint8Array, now: number): boolean {
    if (this.#state !== "pending" || this.#sent === 0) return false;
    const decoded = decodeStun(bytes);
    if (!decoded.ok) return false;
    const msg = decoded.value;
    if (
      msg.messageClass !== StunClass.SuccessResponse &&
      msg.messageClass !== StunClass.ErrorResponse
    ) return false;
    if (!sameTransactionId(msg.transactionId, this.transactionId)) return false;
    this.#state = "answered";
    this.#response = msg;
    this.#rttMs = now - this.#firstSentAt;
    return true;
  }
}

/** The outcome of a Binding transaction. */
export type BindingResult =
  | {
    ok: true;
    /** The server-reflexive address: what the server saw as our source. */
    mapped: TransportAddress;
    /** RFC 5780 OTHER-ADDRESS, when the server has one. */
    otherAddress?: TransportAddress;
    /** RFC 5780 RESPONSE-ORIGIN, when the server sent it. */
    responseOrigin?: TransportAddress;
    /** First transmission to response, ms (includes retransmission waits). */
    rttMs: number;
  }
  | {
    ok: false;
    /**
     * `Timeout`: no response within the retransmission bound;
     * `ErrorResponse`: the server refused (see `code`);
     * `NoMappedAddress`: a success response without (XOR-)MAPPED-ADDRESS.
     */
    kind: "Timeout" | "ErrorResponse" | "NoMappedAddress";
    /** ERROR-CODE for `ErrorResponse`. */
    code?: number;
    /** Human-readable detail. */
    detail: string;
  };

/** Options of a {@linkcode StunBindingClient}. */
export interface BindingClientOptions extends RetransmitTiming {
  /** The STUN server's address. */
  server: TransportAddress;
  /** Extra request attributes (e.g. CHANGE-REQUEST, SOFTWARE). */
  attributes?: StunAttribute[];
  /** Adds FINGERPRINT to the request. Default true. */
  fingerprint?: boolean;
  /** Transaction id to use (default: random). */
  transactionId?: Uint8Array;
}

/**
 * A Binding request to one server: the sans-IO way to learn a
 * server-reflexive candidate.
 *
 * @example
 * ```ts
 * const c = new StunBindingClient({ server: { hostname: "192.0.2.1", port: 3478, family: "IPv4" } }, now);
 * socket.send(c.pollTransmit(now)!, c.server);       // and again at c.pollTimeout()
 * c.handleResponse(datagram, now);                    // for each datagram received
 * const r = c.result();                               // { ok: true, mapped } when done
 * ```
 */
export class StunBindingClient {
  /** The server this client asks. */
  readonly server: TransportAddress;
  readonly #tx: StunTransaction;

  /** @param now current time, ms: the first transmission is due immediately. */
  constructor(opts: BindingClientOptions, now: number) {
    this.server = opts.server;
    const request = encodeStun({
      method: StunMethod.Binding,
      messageClass: StunClass.Request,
      transactionId: opts.transactionId ?? newTransactionId(),
      attributes: opts.attributes ?? [],
    }, { fingerprint: opts.fingerprint ?? true });
    this.#tx = new StunTransaction(request, opts.server, now, opts);
  }

  /** The underlying transaction. */
  get transaction(): StunTransaction {
    return this.#tx;
  }

  /** Request bytes to send to {@linkcode server} now, if a (re)transmission is due. */
  pollTransmit(now: number): Uint8Array | undefined {
    return this.#tx.pollTransmit(now);
  }

  /** When to call again, or `undefined` once there is a result. */
  pollTimeout(): number | undefined {
    return this.#tx.pollTimeout();
  }

  /** Advances time without sending (gives up when the bound has passed). */
  handleTimeout(now: number): void {
    this.#tx.handleTimeout(now);
  }

  /** Offers a received datagram; `true` if it was our response. Never throws. */
  handleResponse(bytes: Uint8Array, now: number): boolean {
    return this.#tx.handleResponse(bytes, now);
  }

  /** The outcome, or `undefined` while pending. */
  result(): BindingResult | undefined {
    return bindingResult(this.#tx);
  }
}

/** The {@linkcode BindingResult} of a finished Binding transaction, or `undefined` if pending. */
export function bindingResult(tx: StunTransaction): BindingResult | undefined {
  if (tx.state === "pending") return undefined;
  if (tx.state === "timedOut") {
    return {
      ok: false,
      kind: "Timeout",
      detail: `no response after ${tx.transmissions} transmissions`,
    };
  }
  const msg = tx.response!;
  if (msg.messageClass === StunClass.ErrorResponse) {
    const e = findAttribute(msg, "ErrorCode");
    return {
      ok: false,
      kind: "ErrorResponse",
      code: e?.code,
      detail: e ? `${e.code} ${e.reason}` : "error response without ERROR-CODE",
    };
  }
  const mapped = mappedAddressOf(msg);
  if (!mapped) {
    return { ok: false, kind: "NoMappedAddress", detail: "success without a mapped address" };
  }
  return {
    ok: true,
    mapped,
    otherAddress: findAttribute(msg, "OtherAddress")?.address,
    responseOrigin: findAttribute(msg, "ResponseOrigin")?.address,
    rttMs: tx.rttMs,
  };
}
