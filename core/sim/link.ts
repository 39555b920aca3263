/**
 * One direction of a simulated network path: random loss, a drop-tail
 * bottleneck queue (fixed rate or trace-driven), propagation delay with
 * jitter, and duplication, in that order.
 *
 * @module
 */

import type { Rng } from "./rng.ts";
import { type DeliveryTrace, TRACE_PACKET_BYTES } from "./trace.ts";
import { type RateStep, serializationEndMs, validateRateSchedule } from "./rate_schedule.ts";

/** How packets are lost at the link's ingress, independently of the queue. */
export type LossModel =
  | { kind: "none" }
  | { kind: "bernoulli"; p: number }
  | {
    kind: "gilbert-elliott";
    pGoodToBad: number;
    pBadToGood: number;
    lossInGood: number;
    lossInBad: number;
  };

/**
 * Gilbert-Elliott parameters for a mean loss rate and a mean burst length (in
 * packets), with loss 1 in the bad state and 0 in the good one:
 * `pBadToGood = 1 / meanBurstPackets`,
 * `pGoodToBad = meanLoss * pBadToGood / (1 - meanLoss)`.
 *
 * @param meanLoss long-run fraction of packets lost, in [0, 1)
 * @param meanBurstPackets mean number of consecutive losses, >= 1
 */
export function gilbertElliott(
  meanLoss: number,
  meanBurstPackets: number,
): LossModel {
  if (!(meanLoss >= 0 && meanLoss < 1)) {
    throw new RangeError(`gilbertElliott: meanLoss must be in [0, 1)`);
  }
  if (!(meanBurstPackets >= 1)) {
    throw new RangeError(`gilbertElliott: meanBurstPackets must be >= 1`);
  }
  const pBadToGood = 1 / meanBurstPackets;
  const pGoodToBad = (meanLoss * pBadToGood) / (1 - meanLoss);
  if (pGoodToBad > 1) {
    throw new RangeError(
      `gilbertElliott: loss ${meanLoss} with bursts of ${meanBurstPackets} needs pGoodToBad = ${pGoodToBad} > 1`,
    );
  }
  return {
    kind: "gilbert-elliott",
    pGoodToBad,
    pBadToGood,
    lossInGood: 0,
    lossInBad: 1,
  };
}

/** Parameters of one direction of a link. */
export interface LinkConfig {
  /** One-way propagation delay in ms. */
  delayMs: number;
  /** Extra delay drawn uniformly from [0, jitterMs) per packet. */
  jitterMs: number;
  /**
   * If false, jitter never reorders: a packet never arrives before the one
   * sent ahead of it (arrival = max(arrival, previous arrival)). If true,
   * packets may overtake each other.
   */
  reorder: boolean;
  /** Probability that a delivered packet arrives twice. */
  duplicateProbability: number;
  /** Random loss at ingress. */
  loss: LossModel;
  /**
   * Serialization rate of the bottleneck in bit/s; undefined = infinite. With
   * `rateSchedule`, the rate before the schedule's first step.
   */
  rateBps?: number;
  /**
   * Capacity that changes over time: steps `{atMs, bps}` with strictly
   * increasing `atMs` on the link's clock. Ahead of the first step the rate is
   * `rateBps` if set, else the first step's. Exclusive with `trace`.
   */
  rateSchedule?: readonly RateStep[];
  /**
   * Drop-tail limit of the queue in front of the bottleneck, in bytes
   * (default 64 KiB when there is a bottleneck and no `queueMs`; ignored
   * without a bottleneck).
   */
  queueBytes?: number;
  /**
   * Drop-tail limit in time: a datagram is dropped if it would spend more
   * than `queueMs` in the bottleneck (waiting plus its own serialization).
   * Departure times are known on entry, so this is exact whatever the rate,
   * schedule or trace. May be combined with `queueBytes` (both apply).
   */
  queueMs?: number;
  /** Mahimahi-style delivery opportunities instead of a fixed rate. */
  trace?: DeliveryTrace;
  /** Datagrams larger than this are dropped (counted in `droppedMtu`). */
  mtu?: number;
}

/** Counters of one link direction. */
export interface LinkStats {
  /** Datagrams handed to `send`. */
  sent: number;
  /** Datagrams handed out by `receive`, duplicates included. */
  delivered: number;
  /** Lost to the random loss model. */
  lostRandom: number;
  /** Dropped because the bottleneck queue was full. */
  droppedQueue: number;
  /** Extra copies created by duplication. */
  duplicated: number;
  /** Dropped for exceeding the MTU. */
  droppedMtu: number;
  /** Bytes handed out by `receive`, duplicates included. */
  bytesDelivered: number;
  /** Largest time a datagram spent in the bottleneck (waiting + serialization), ms. */
  maxQueueDelayMs: number;
}

/** Default drop-tail limit when a bottleneck is configured. */
export const DEFAULT_QUEUE_BYTES = 64 * 1024;

/** What `Link.send` did with a datagram. */
export type SendFate = "queued" | "lost" | "dropped-queue" | "dropped-mtu";

/** A datagram leaving the link, with the times it went through. */
export interface LinkArrival {
  /** The datagram (a copy of what was sent). */
  readonly data: Uint8Array;
  /** The caller's tag given to `send` (0 by default); e.g. a flow id. */
  readonly tag: number;
  /** When it was sent (the `now` of `send`). */
  readonly sentAt: number;
  /** When its last bit left the bottleneck (`sentAt` without one). */
  readonly departAt: number;
  /** Scheduled arrival time (departure + delay + jitter). */
  readonly at: number;
  /** True for the extra copy made by duplication. */
  readonly duplicate: boolean;
}

interface InFlight extends LinkArrival {
  seq: number;
}

/** Min-heap of in-flight datagrams ordered by (arrival time, send sequence). */
class ArrivalHeap {
  #items: InFlight[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): InFlight | undefined {
    return this.#items[0];
  }

  static #less(x: InFlight, y: InFlight): boolean {
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  push(item: InFlight): void {
    const h = this.#items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!ArrivalHeap.#less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): InFlight | undefined {
    const h = this.#items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && ArrivalHeap.#less(h[l], h[m])) m = l;
        if (r < h.length && ArrivalHeap.#less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function checkProbability(name: string, p: number): void {
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(
      `Link: ${name} must be a probability in [0, 1], got ${p}`,
    );
  }
}

/**
 * One direction of a simulated link.
 *
 * Effects, in order: MTU check, random loss at ingress, the drop-tail queue
 * and serialization at `rateBps` (or trace opportunities), propagation delay
 * plus jitter, then duplication. Time only moves forward: `send` and
 * `receive` must be called with non-decreasing `now`.
 *
 * Each effect draws from its own fork of the given `rng`, so e.g. turning on
 * jitter does not change which packets are lost.
 */
export class Link {
  readonly #config: LinkConfig;
  readonly #lossRng: Rng;
  readonly #jitterRng: Rng;
  readonly #dupRng: Rng;
  readonly #queueLimit: number;
  readonly #inFlight = new ArrivalHeap();
  /** Departure times and sizes of datagrams still in the bottleneck, FIFO. */
  #queue: { depart: number; size: number }[] = [];
  #queueHead = 0;
  #queued = 0;
  /** When the bottleneck finishes the last datagram accepted (fixed rate). */
  #busyUntil = -Infinity;
  /** Next unused trace opportunity (global index). */
  #nextOpportunity = 0;
  #geBad = false;
  #lastArrival = -Infinity;
  #lastNow = -Infinity;
  #seq = 0;
  #stats: LinkStats = {
    sent: 0,
    delivered: 0,
    lostRandom: 0,
    droppedQueue: 0,
    duplicated: 0,
    droppedMtu: 0,
    bytesDelivered: 0,
    maxQueueDelayMs: 0,
  };

  /**
   * @param config link parameters (validated here)
   * @param rng randomness source; the link forks its own streams from it
   */
  constructor(config: LinkConfig, rng: Rng) {
    if (!(config.delayMs >= 0)) {
      throw new RangeError(`Link: delayMs must be >= 0, got ${config.delayMs}`);
    }
    if (!(config.jitterMs >= 0)) {
      throw new RangeError(
        `Link: jitterMs must be >= 0, got ${config.jitterMs}`,
      );
    }
    checkProbability("duplicateProbability", config.duplicateProbability);
    if (config.rateBps !== undefined && !(config.rateBps > 0)) {
      throw new RangeError(`Link: rateBps must be > 0, got ${config.rateBps}`);
    }
    if (config.rateBps !== undefined && config.trace !== undefined) {
      throw new RangeError("Link: set either rateBps or trace, not both");
    }
    if (config.rateSchedule !== undefined && config.trace !== undefined) {
      throw new RangeError("Link: set either rateSchedule or trace, not both");
    }
    const schedule = config.rateSchedule === undefined
      ? undefined
      : validateRateSchedule(config.rateSchedule);
    if (config.queueMs !== undefined && !(config.queueMs > 0)) {
      throw new RangeError(`Link: queueMs must be > 0, got ${config.queueMs}`);
    }
    if (config.queueBytes !== undefined && !(config.queueBytes > 0)) {
      throw new RangeError(
        `Link: queueBytes must be > 0, got ${config.queueBytes}`,
      );
    }
    const loss = config.loss;
    if (loss.kind === "bernoulli") checkProbability("loss.p", loss.p);
    if (loss.kind === "gilbert-elliott") {
      checkProbability("loss.pGoodToBad", loss.pGoodToBad);
      checkProbability("loss.pBadToGood", loss.pBadToGood);
      checkProbability("loss.lossInGood", loss.lossInGood);
      checkProbability("loss.lossInBad", loss.lossInBad);
    }
    this.#config = { ...config, loss: { ...config.loss }, rateSchedule: schedule };
    this.#queueLimit = config.queueBytes ??
      (config.queueMs !== undefined ? Infinity : DEFAULT_QUEUE_BYTES);
    this.#lossRng = rng.fork();
    this.#jitterRng = rng.fork();
    this.#dupRng = rng.fork();
    if (loss.kind === "gilbert-elliott") {
      // Start in the stationary distribution so early packets are unbiased.
      const denom = loss.pGoodToBad + loss.pBadToGood;
      const piBad = denom > 0 ? loss.pGoodToBad / denom : 0;
      this.#geBad = this.#lossRng.next() < piBad;
    }
  }

  /** Counters so far (a snapshot copy). */
  get stats(): LinkStats {
    return { ...this.#stats };
  }

  /** Bytes in the bottleneck queue as of the latest `send`/`receive` time. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** Number of datagrams past the bottleneck and not yet received. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  #advance(now: number): void {
    if (Number.isNaN(now)) throw new RangeError("Link: now is NaN");
    if (now < this.#lastNow) {
      throw new RangeError(
        `Link: time went backwards (${now} ms after ${this.#lastNow} ms)`,
      );
    }
    this.#lastNow = now;
    const q = this.#queue;
    while (this.#queueHead < q.length && q[this.#queueHead].depart <= now) {
      this.#queued -= q[this.#queueHead].size;
      this.#queueHead++;
    }
    if (this.#queueHead > 1024 && this.#queueHead * 2 > q.length) {
      this.#queue = q.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  #lost(): boolean {
    const loss = this.#config.loss;
    switch (loss.kind) {
      case "none":
        return false;
      case "bernoulli":
        return this.#lossRng.next() < loss.p;
      case "gilbert-elliott": {
        // The current state decides this packet; then the chain moves on.
        const p = this.#geBad ? loss.lossInBad : loss.lossInGood;
        const lost = this.#lossRng.next() < p;
        const u = this.#lossRng.next();
        this.#geBad = this.#geBad ? u >= loss.pBadToGood : u < loss.pGoodToBad;
        return lost;
      }
    }
  }

  /** Passes `size` bytes through the bottleneck; returns the departure time or undefined if dropped. */
  #bottleneck(size: number, now: number): number | undefined {
    const { rateBps, trace, rateSchedule, queueMs } = this.#config;
    if (rateBps === undefined && trace === undefined && rateSchedule === undefined) return now;
    if (this.#queued + size > this.#queueLimit) {
      this.#stats.droppedQueue++;
      return undefined;
    }
    // Compute the departure first, commit it only if the packet is kept.
    let depart: number;
    let nextOpportunity = this.#nextOpportunity;
    if (trace !== undefined) {
      const needed = Math.max(1, Math.ceil(size / TRACE_PACKET_BYTES));
      const first = Math.max(
        this.#nextOpportunity,
        trace.opportunityIndexAfter(now),
      );
      const last = first + needed - 1;
      depart = trace.opportunityTime(last);
      nextOpportunity = last + 1;
    } else {
      const start = Math.max(now, this.#busyUntil);
      depart = rateSchedule !== undefined
        ? serializationEndMs(rateSchedule, start, size * 8, rateBps)
        : start + (size * 8 * 1000) / rateBps!;
    }
    if (queueMs !== undefined && depart - now > queueMs) {
      this.#stats.droppedQueue++;
      return undefined;
    }
    this.#nextOpportunity = nextOpportunity;
    if (trace === undefined) this.#busyUntil = depart;
    this.#queue.push({ depart, size });
    this.#queued += size;
    const queueDelay = depart - now;
    if (queueDelay > this.#stats.maxQueueDelayMs) {
      this.#stats.maxQueueDelayMs = queueDelay;
    }
    return depart;
  }

  /**
   * Puts a datagram on the link at time `now` (the bytes are copied). It is
   * either dropped (MTU, random loss, full queue) or becomes receivable later.
   *
   * @param tag opaque number handed back with the datagram by
   * `receiveArrivals` (e.g. which flow it belongs to when several share the link)
   * @returns what happened to it
   */
  send(datagram: Uint8Array, now: number, tag = 0): SendFate {
    this.#advance(now);
    this.#stats.sent++;
    const { mtu, delayMs, jitterMs, reorder, duplicateProbability } = this.#config;
    if (mtu !== undefined && datagram.length > mtu) {
      this.#stats.droppedMtu++;
      return "dropped-mtu";
    }
    if (this.#lost()) {
      this.#stats.lostRandom++;
      return "lost";
    }
    const depart = this.#bottleneck(datagram.length, now);
    if (depart === undefined) return "dropped-queue";
    let arrival = depart + delayMs +
      (jitterMs > 0 ? this.#jitterRng.next() * jitterMs : 0);
    if (!reorder) arrival = Math.max(arrival, this.#lastArrival);
    this.#lastArrival = Math.max(this.#lastArrival, arrival);
    const base = { at: arrival, tag, sentAt: now, departAt: depart };
    this.#inFlight.push({
      ...base,
      seq: this.#seq++,
      data: datagram.slice(),
      duplicate: false,
    });
    if (
      duplicateProbability > 0 && this.#dupRng.next() < duplicateProbability
    ) {
      this.#stats.duplicated++;
      this.#inFlight.push({
        ...base,
        seq: this.#seq++,
        data: datagram.slice(),
        duplicate: true,
      });
    }
    return "queued";
  }

  /** Datagrams whose arrival time is <= now, in arrival order (ties in send order). */
  receive(now: number): Uint8Array[] {
    return this.receiveArrivals(now).map((a) => a.data);
  }

  /** Like `receive`, with each datagram's tag and timeline. */
  receiveArrivals(now: number): LinkArrival[] {
    this.#advance(now);
    const out: LinkArrival[] = [];
    for (;;) {
      const head = this.#inFlight.peek();
      if (head === undefined || head.at > now) break;
      this.#inFlight.pop();
      out.push(head);
      this.#stats.delivered++;
      this.#stats.bytesDelivered += head.data.length;
    }
    return out;
  }

  /** Arrival time of the earliest datagram in flight, if any. */
  nextArrival(): number | undefined {
    return this.#inFlight.peek()?.at;
  }
}
