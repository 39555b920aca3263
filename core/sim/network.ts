/**
 * A virtual-time event loop that drives two sans-IO endpoints over two
 * simulated links, with an optional man-in-the-middle.
 *
 * @module
 */

import type { Link } from "./link.ts";

/** The sans-IO contract every protocol endpoint in core/ follows. */
export interface SimEndpoint {
  /** A datagram arrived from the network at time `now`. */
  handleDatagram(datagram: Uint8Array, now: number): void;
  /** Next datagram to send, if any; called repeatedly until undefined. */
  pollTransmit(now: number): Uint8Array | undefined;
  /** Absolute virtual time of the next timer, if any. */
  pollTimeout(): number | undefined;
  /** Called when `now >= pollTimeout()`. */
  handleTimeout(now: number): void;
}

/** Which way a datagram travels. */
export type Direction = "a->b" | "b->a";

/** What a middlebox lets continue for one intercepted datagram. */
export interface MiddleboxVerdict {
  /** Datagrams that enter the link now (empty = drop; several = duplicate or inject). */
  forward: Uint8Array[];
  /** Datagrams held back and put on the link at a later time. */
  later?: { at: number; datagram: Uint8Array }[];
}

/**
 * Sees every datagram on the wire, at the sender's side of the link; returns
 * what continues (none = drop, several = duplicate/inject). May also hold
 * datagrams and release them later via the returned `later` list.
 */
export interface Middlebox {
  /** Decides the fate of one datagram sent at `now` in `direction`. */
  intercept(
    datagram: Uint8Array,
    direction: Direction,
    now: number,
  ): MiddleboxVerdict;
}

/** One line of the network's wire log. */
export interface TraceEntry {
  /** Virtual time: the arrival for "delivered", the send time otherwise. */
  readonly at: number;
  /** Which way the datagram travelled. */
  readonly direction: Direction;
  /** Datagram length. */
  readonly bytes: number;
  /** What happened to it. */
  readonly fate: "delivered" | "lost" | "dropped-by-middlebox";
}

/** Options of {@linkcode SimNetwork}. */
export interface SimNetworkOptions {
  /** Endpoint on side a. */
  a: SimEndpoint;
  /** Endpoint on side b. */
  b: SimEndpoint;
  /** Link carrying a's datagrams to b. */
  aToB: Link;
  /** Link carrying b's datagrams to a. */
  bToA: Link;
  /** Optional man-in-the-middle on both directions. */
  middlebox?: Middlebox;
  /** Virtual time at which the network starts (default 0). */
  startTime?: number;
  /** How many trace entries to keep (the most recent ones; default 10 000, 0 = none). */
  traceLimit?: number;
  /** Busy-loop guard: events allowed at one instant before throwing (default 100 000). */
  maxEventsPerInstant?: number;
}

type Side = "a" | "b";

interface Pending {
  at: number;
  /** 0 = injection, 1 = middlebox release (order among ties at one instant). */
  prio: 0 | 1;
  seq: number;
  side: Side;
  datagram: Uint8Array;
}

/** Event kinds, in tie-breaking order at one instant. */
const enum Kind {
  Pending = 0,
  ArriveA = 2,
  ArriveB = 3,
  TimerA = 4,
  TimerB = 5,
}

const KIND_NAMES: Record<Kind, string> = {
  [Kind.Pending]: "injection or middlebox release",
  [Kind.ArriveA]: "arrival at a",
  [Kind.ArriveB]: "arrival at b",
  [Kind.TimerA]: "timer of endpoint a",
  [Kind.TimerB]: "timer of endpoint b",
};

const MAX_TRANSMITS_PER_DRAIN = 1_000_000;

/**
 * Drives two {@linkcode SimEndpoint}s over two {@linkcode Link}s in virtual
 * time. Nothing reads a clock or sets a timer; the same endpoints, links and
 * seeds always produce the same run.
 *
 * Event order at one instant: injections and middlebox releases (in the order
 * they were scheduled), then arrivals at a, arrivals at b, a's timer, b's
 * timer. After every event that touches an endpoint, its `pollTransmit` is
 * drained into its outgoing link, through the middlebox if any. Both
 * endpoints are also drained at the start of each `runUntil` /
 * `runUntilCondition` call, so datagrams queued by test code between runs
 * leave without waiting for a timer.
 *
 * @example
 * ```ts ignore
 * const rng = new Rng(1);
 * const link = { delayMs: 20, jitterMs: 0, reorder: false, duplicateProbability: 0, loss: { kind: "none" } } as const;
 * const net = new SimNetwork({ a, b, aToB: new Link(link, rng.fork()), bToA: new Link(link, rng.fork()) });
 * net.runUntil(5_000);
 * ```
 */
export class SimNetwork {
  readonly #a: SimEndpoint;
  readonly #b: SimEndpoint;
  readonly #aToB: Link;
  readonly #bToA: Link;
  readonly #middlebox: Middlebox | undefined;
  readonly #traceLimit: number;
  readonly #maxEventsPerInstant: number;
  #now: number;
  #pending: Pending[] = [];
  #pendingSeq = 0;
  #trace: TraceEntry[] = [];
  #traceStart = 0;
  #instant = NaN;
  #eventsAtInstant = 0;

  /** @param opts endpoints, links and options */
  constructor(opts: SimNetworkOptions) {
    this.#a = opts.a;
    this.#b = opts.b;
    this.#aToB = opts.aToB;
    this.#bToA = opts.bToA;
    if (opts.aToB === opts.bToA) {
      throw new Error(
        "SimNetwork: aToB and bToA must be distinct Link objects",
      );
    }
    this.#middlebox = opts.middlebox;
    this.#now = opts.startTime ?? 0;
    if (!Number.isFinite(this.#now)) {
      throw new RangeError("SimNetwork: startTime must be finite");
    }
    this.#traceLimit = opts.traceLimit ?? 10_000;
    this.#maxEventsPerInstant = opts.maxEventsPerInstant ?? 100_000;
  }

  /** Current virtual time in ms. */
  get now(): number {
    return this.#now;
  }

  /** The most recent wire events (at most `traceLimit`), oldest first. */
  get trace(): readonly TraceEntry[] {
    return this.#trace.slice(this.#traceStart).concat(
      this.#trace.slice(0, this.#traceStart),
    );
  }

  /**
   * Runs events in time order until the next one is later than `until` or
   * nothing is pending; then sets the clock to `until` (if finite).
   * Returns the number of events processed.
   *
   * Throws if more than `maxEventsPerInstant` events happen at one instant
   * (an endpoint whose timer does not advance). With `until = Infinity` it
   * returns only once no timer or datagram is pending.
   */
  runUntil(until: number): number {
    if (Number.isNaN(until)) throw new RangeError("runUntil: until is NaN");
    this.#drain("a");
    this.#drain("b");
    let n = 0;
    while (this.#step(until)) n++;
    if (Number.isFinite(until) && until > this.#now) this.#now = until;
    return n;
  }

  /**
   * Runs until `predicate()` is true (checked before the first event and after
   * every event) or the next event is later than `deadline`. Returns whether
   * the predicate became true; if it did, the clock stays at that event's time.
   */
  runUntilCondition(predicate: () => boolean, deadline: number): boolean {
    if (Number.isNaN(deadline)) {
      throw new RangeError("runUntilCondition: deadline is NaN");
    }
    this.#drain("a");
    this.#drain("b");
    if (predicate()) return true;
    while (this.#step(deadline)) {
      if (predicate()) return true;
    }
    if (Number.isFinite(deadline) && deadline > this.#now) {
      this.#now = deadline;
    }
    return predicate();
  }

  /**
   * Delivers `datagram` (copied) to side `to` at time `at`, as if it came off
   * the wire: it bypasses the links and the middlebox.
   */
  inject(to: "a" | "b", datagram: Uint8Array, at: number): void {
    if (!(at >= this.#now)) {
      throw new RangeError(
        `inject: time ${at} ms is before the current time ${this.#now} ms`,
      );
    }
    this.#schedule({
      at,
      prio: 0,
      seq: 0,
      side: to,
      datagram: datagram.slice(),
    });
  }

  #schedule(p: Pending): void {
    p.seq = this.#pendingSeq++;
    const q = this.#pending;
    // Binary search for the first element after p.
    let lo = 0, hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = q[mid];
      const after = m.at > p.at || (m.at === p.at && m.prio > p.prio);
      if (after) hi = mid;
      else lo = mid + 1;
    }
    q.splice(lo, 0, p);
  }

  #record(entry: TraceEntry): void {
    if (this.#traceLimit <= 0) return;
    if (this.#trace.length < this.#traceLimit) {
      this.#trace.push(entry);
    } else {
      this.#trace[this.#traceStart] = entry;
      this.#traceStart = (this.#traceStart + 1) % this.#traceLimit;
    }
  }

  #timeout(ep: SimEndpoint, side: Side): number | undefined {
    const t = ep.pollTimeout();
    if (t !== undefined && Number.isNaN(t)) {
      throw new Error(
        `SimNetwork: endpoint ${side} returned NaN from pollTimeout()`,
      );
    }
    return t;
  }

  #step(until: number): boolean {
    let kind: Kind | undefined;
    let time = Infinity;
    const consider = (t: number | undefined, k: Kind): void => {
      // Candidates are considered in tie-breaking order, so strict < keeps ties stable.
      if (t !== undefined && (kind === undefined || t < time)) {
        kind = k;
        time = t;
      }
    };
    consider(this.#pending[0]?.at, Kind.Pending);
    consider(this.#bToA.nextArrival(), Kind.ArriveA);
    consider(this.#aToB.nextArrival(), Kind.ArriveB);
    consider(this.#timeout(this.#a, "a"), Kind.TimerA);
    consider(this.#timeout(this.#b, "b"), Kind.TimerB);
    if (kind === undefined || time > until) return false;

    const now = Math.max(time, this.#now);
    if (now === this.#instant) {
      if (++this.#eventsAtInstant > this.#maxEventsPerInstant) {
        throw new Error(
          `SimNetwork: busy loop: more than ${this.#maxEventsPerInstant} events at t=${now} ms without virtual time advancing ` +
            `(last: ${KIND_NAMES[kind]}, scheduled for ${time} ms). ` +
            `An endpoint probably keeps returning a pollTimeout() <= now that handleTimeout() does not move forward.`,
        );
      }
    } else {
      this.#instant = now;
      this.#eventsAtInstant = 1;
    }
    this.#now = now;

    switch (kind) {
      case Kind.Pending: {
        const p = this.#pending.shift()!;
        if (p.prio === 0) {
          this.#endpoint(p.side).handleDatagram(p.datagram, now);
          this.#drain(p.side);
        } else {
          this.#toLink(p.side === "b" ? "a->b" : "b->a", p.datagram);
        }
        break;
      }
      case Kind.ArriveA:
      case Kind.ArriveB: {
        const side: Side = kind === Kind.ArriveA ? "a" : "b";
        const link = side === "a" ? this.#bToA : this.#aToB;
        const direction: Direction = side === "a" ? "b->a" : "a->b";
        const ep = this.#endpoint(side);
        for (const d of link.receive(now)) {
          this.#record({
            at: now,
            direction,
            bytes: d.length,
            fate: "delivered",
          });
          ep.handleDatagram(d, now);
        }
        this.#drain(side);
        break;
      }
      case Kind.TimerA:
      case Kind.TimerB: {
        const side: Side = kind === Kind.TimerA ? "a" : "b";
        this.#endpoint(side).handleTimeout(now);
        this.#drain(side);
        break;
      }
    }
    return true;
  }

  #endpoint(side: Side): SimEndpoint {
    return side === "a" ? this.#a : this.#b;
  }

  #drain(side: Side): void {
    const ep = this.#endpoint(side);
    const direction: Direction = side === "a" ? "a->b" : "b->a";
    for (let i = 0;; i++) {
      if (i >= MAX_TRANSMITS_PER_DRAIN) {
        throw new Error(
          `SimNetwork: endpoint ${side} returned more than ${MAX_TRANSMITS_PER_DRAIN} datagrams from pollTransmit() at t=${this.#now} ms; it never returns undefined`,
        );
      }
      const d = ep.pollTransmit(this.#now);
      if (d === undefined) return;
      this.#transmit(direction, d);
    }
  }

  #transmit(direction: Direction, datagram: Uint8Array): void {
    const mb = this.#middlebox;
    if (mb === undefined) {
      this.#toLink(direction, datagram);
      return;
    }
    const verdict = mb.intercept(datagram, direction, this.#now);
    const later = verdict.later ?? [];
    if (verdict.forward.length === 0 && later.length === 0) {
      this.#record({
        at: this.#now,
        direction,
        bytes: datagram.length,
        fate: "dropped-by-middlebox",
      });
    }
    for (const f of verdict.forward) this.#toLink(direction, f);
    const to: Side = direction === "a->b" ? "b" : "a";
    for (const l of later) {
      if (Number.isNaN(l.at)) {
        throw new RangeError("SimNetwork: middlebox release time is NaN");
      }
      this.#schedule({
        at: Math.max(l.at, this.#now),
        prio: 1,
        seq: 0,
        side: to,
        datagram: l.datagram,
      });
    }
  }

  #toLink(direction: Direction, datagram: Uint8Array): void {
    const link = direction === "a->b" ? this.#aToB : this.#bToA;
    const before = link.inFlight;
    link.send(datagram, this.#now);
    // Every datagram that survives ingress and the queue adds at least one in-flight entry.
    if (link.inFlight === before) {
      this.#record({
        at: this.#now,
        direction,
        bytes: datagram.length,
        fate: "lost",
      });
    }
  }
}
