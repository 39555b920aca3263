/**
 * Sans-IO NAT behaviour discovery (RFC 5780 §4.3 mapping and §4.4
 * filtering tests) against a STUN server in RFC 5780 mode.
 *
 * The tests run one at a time from one local socket, in an order chosen so
 * that no earlier test opens the NAT filter a later test probes:
 *
 * 1. Test I: Binding to the primary address → mapped address M1 and the
 *    server's OTHER-ADDRESS (alternate IP A2, alternate port P2).
 * 2. Filtering test II: to the primary, CHANGE-REQUEST change-IP+port; an
 *    answer (from A2:P2) means endpoint-independent filtering.
 * 3. Filtering test III (only if II got none): change-port only; an answer
 *    (from A1:P2) means address-dependent, none means address-and-port-dependent.
 * 4. Mapping test II: Binding to A2:P1 → M2; M2 = M1 means endpoint-independent.
 * 5. Mapping test III (only if M2 ≠ M1): to A2:P2 → M3; M3 = M2 means
 *    address-dependent, else address-and-port-dependent.
 *
 * Filtering runs before mapping because mapping tests send to A2, which
 * would let A2's answers through an address-dependent filter.
 *
 * @module
 */

import { sameAddress, type TransportAddress } from "./ip.ts";
import {
  type BindingResult,
  bindingResult,
  type RetransmitTiming,
  StunTransaction,
} from "./client.ts";
import {
  encodeStun,
  newTransactionId,
  type StunAttribute,
  StunClass,
  StunMethod,
} from "./message.ts";

/** A NAT behaviour class (RFC 4787 terms, as RFC 5780 reports them). */
export type NatBehaviour =
  | "endpoint-independent"
  | "address-dependent"
  | "address-and-port-dependent";

/** Which test a request belongs to. */
export type DiscoveryStep =
  | "test1"
  | "filteringTest2"
  | "filteringTest3"
  | "mappingTest2"
  | "mappingTest3";

/** The verdict of a finished discovery. */
export type NatDiscoveryResult =
  | {
    ok: true;
    /** Mapping behaviour. */
    mapping: NatBehaviour;
    /** Filtering behaviour. */
    filtering: NatBehaviour;
    /** The mapped address of test I. */
    mapped: TransportAddress;
    /** `false` when M1 equals the local address given to the constructor (no NAT). */
    natPresent: boolean | undefined;
  }
  | {
    ok: false;
    /**
     * `ServerUnreachable`: test I got no answer; `NoRfc5780`: the server has
     * no OTHER-ADDRESS; `TestFailed`: a test that must be answered was not
     * (mapping tests II/III), or got an error response.
     */
    kind: "ServerUnreachable" | "NoRfc5780" | "TestFailed";
    /** Which step failed. */
    step: DiscoveryStep;
    /** Human-readable detail. */
    detail: string;
  };

/** Options of a {@linkcode NatDiscovery}. */
export interface NatDiscoveryOptions extends RetransmitTiming {
  /** The server's primary address. */
  server: TransportAddress;
  /** The local socket's address, if known: detects "no NAT". */
  localAddress?: TransportAddress;
}

/** A datagram the discovery wants sent from its socket. */
export interface DiscoveryTransmit {
  /** Request bytes. */
  bytes: Uint8Array;
  /** Destination. */
  to: TransportAddress;
  /** The test it belongs to (for logs). */
  step: DiscoveryStep;
}

/**
 * The RFC 5780 discovery state machine. Drive it like any sans-IO
 * machine: `pollTransmit(now)` until `undefined`, sleep until
 * `pollTimeout()`, feed datagrams to `handleDatagram`, read `result()`.
 */
export class NatDiscovery {
  readonly #opts: NatDiscoveryOptions;
  #step: DiscoveryStep = "test1";
  #tx: StunTransaction;
  #result?: NatDiscoveryResult;
  #m1?: TransportAddress;
  #m2?: TransportAddress;
  #other?: TransportAddress;
  #filtering?: NatBehaviour;

  /** @param now current time, ms: test I is due immediately. */
  constructor(opts: NatDiscoveryOptions, now: number) {
    this.#opts = opts;
    this.#tx = this.#request(opts.server, [], now);
  }

  /** The step in progress (the last one once finished). */
  get step(): DiscoveryStep {
    return this.#step;
  }

  #request(to: TransportAddress, attributes: StunAttribute[], now: number): StunTransaction {
    const bytes = encodeStun({
      method: StunMethod.Binding,
      messageClass: StunClass.Request,
      transactionId: newTransactionId(),
      attributes,
    }, { fingerprint: true });
    return new StunTransaction(bytes, to, now, this.#opts);
  }

  /** The next datagram to send, if one is due at `now`. */
  pollTransmit(now: number): DiscoveryTransmit | undefined {
    if (this.#result) return undefined;
    const bytes = this.#tx.pollTransmit(now);
    if (bytes) return { bytes, to: this.#tx.to, step: this.#step };
    this.#advance(now);
    if (this.#result) return undefined;
    const next = this.#tx.pollTransmit(now);
    return next ? { bytes: next, to: this.#tx.to, step: this.#step } : undefined;
  }

  /** When to call `pollTransmit` / `handleTimeout` again; `undefined` once finished. */
  pollTimeout(): number | undefined {
    return this.#result ? undefined : this.#tx.pollTimeout();
  }

  /** Advances time without sending: ends a timed-out test and moves on. */
  handleTimeout(now: number): void {
    if (this.#result) return;
    this.#tx.handleTimeout(now);
    this.#advance(now);
  }

  /**
   * Offers a datagram received on the discovery socket. `true` if it
   * answered the current test. Never throws.
   */
  handleDatagram(bytes: Uint8Array, now: number): boolean {
    if (this.#result) return false;
    if (!this.#tx.handleResponse(bytes, now)) return false;
    this.#advance(now);
    return true;
  }

  /** The verdict, or `undefined` while tests are running. */
  result(): NatDiscoveryResult | undefined {
    return this.#result;
  }

  #fail(kind: "ServerUnreachable" | "NoRfc5780" | "TestFailed", detail: string): void {
    this.#result = { ok: false, kind, step: this.#step, detail };
  }

  #next(step: DiscoveryStep, to: TransportAddress, attrs: StunAttribute[], now: number): void {
    this.#step = step;
    this.#tx = this.#request(to, attrs, now);
  }

  /** Moves to the next test once the current transaction is over. */
  #advance(now: number): void {
    const r: BindingResult | undefined = bindingResult(this.#tx);
    if (!r) return;
    const server = this.#opts.server;
    switch (this.#step) {
      case "test1": {
        if (!r.ok) {
          return this.#fail(
            r.kind === "Timeout" ? "ServerUnreachable" : "TestFailed",
            r.detail,
          );
        }
        if (!r.otherAddress) return this.#fail("NoRfc5780", "no OTHER-ADDRESS in the response");
        this.#m1 = r.mapped;
        this.#other = r.otherAddress;
        return this.#next("filteringTest2", server, [
          { kind: "ChangeRequest", changeIp: true, changePort: true },
        ], now);
      }
      case "filteringTest2":
        if (r.ok) {
          this.#filtering = "endpoint-independent";
          return this.#mappingTest2(now);
        }
        if (r.kind !== "Timeout") return this.#fail("TestFailed", r.detail);
        return this.#next("filteringTest3", server, [
          { kind: "ChangeRequest", changeIp: false, changePort: true },
        ], now);
      case "filteringTest3":
        if (!r.ok && r.kind !== "Timeout") return this.#fail("TestFailed", r.detail);
        this.#filtering = r.ok ? "address-dependent" : "address-and-port-dependent";
        return this.#mappingTest2(now);
      case "mappingTest2":
        if (!r.ok) return this.#fail("TestFailed", r.detail);
        this.#m2 = r.mapped;
        if (sameAddress(r.mapped, this.#m1!)) return this.#finish("endpoint-independent");
        return this.#next("mappingTest3", this.#other!, [], now);
      case "mappingTest3":
        if (!r.ok) return this.#fail("TestFailed", r.detail);
        return this.#finish(
          sameAddress(r.mapped, this.#m2!) ? "address-dependent" : "address-and-port-dependent",
        );
    }
  }

  #mappingTest2(now: number): void {
    const to: TransportAddress = { ...this.#other!, port: this.#opts.server.port };
    this.#next("mappingTest2", to, [], now);
  }

  #finish(mapping: NatBehaviour): void {
    const local = this.#opts.localAddress;
    this.#result = {
      ok: true,
      mapping,
      filtering: this.#filtering!,
      mapped: this.#m1!,
      natPresent: local ? !sameAddress(local, this.#m1!) : undefined,
    };
  }
}
