/**
 * One direction of a simulated network path: random loss, a drop-tail
 * bottleneck queue (fixed rate or trace-driven), propagation delay with
 * jitter, and duplication, in that order.
 *
 * @module
 */

import type { Rng } from "./rng.ts";
import { type DeliveryTrace, TRACE_PACKET_BYTES } from "./trace.ts";

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
  /** Serialization rate of the bottleneck in bit/s; undefined = infinite. */
  rateBps?: number;
  /**
   * Drop-tail limit of the queue in front of the bottleneck, in bytes
   * (default 64 KiB when there is a bottleneck; ignored without one).
   */
  queueBytes?: number;
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

interface InFlight {
  at: number;
  seq: number;
  data: Uint8Array;
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
    this.#config = { ...config, loss: { ...config.loss } };
    this.#queueLimit = config.queueBytes ?? DEFAULT_QUEUE_BYTES;
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
    const { rateBps, trace } = this.#config;
    if (rateBps === undefined && trace === undefined) return now;
    if (this.#queued + size > this.#queueLimit) {
      this.#stats.droppedQueue++;
      return undefined;
    }
    let depart: number;
    if (trace !== undefined) {
      const needed = Math.max(1, Math.ceil(size / TRACE_PACKET_BYTES));
      const first = Math.max(
        this.#nextOpportunity,
        trace.opportunityIndexAfter(now),
      );
      const last = first + needed - 1;
      depart = trace.opportunityTime(last);
      this.#nextOpportunity = last + 1;
    } else {
      const start = Math.max(now, this.#busyUntil);
      depart = start + (size * 8 * 1000) / rateBps!;
      this.#busyUntil = depart;
    }
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
   */
  send(datagram: Uint8Array, now: number): void {
    this.#advance(now);
    this.#stats.sent++;
    const { mtu, delayMs, jitterMs, reorder, duplicateProbability } = this.#config;
    if (mtu !== undefined && datagram.length > mtu) {
      this.#stats.droppedMtu++;
      return;
    }
    if (this.#lost()) {
      this.#stats.lostRandom++;
      return;
    }
    const depart = this.#bottleneck(datagram.length, now);
    if (depart === undefined) return;
    let arrival = depart + delayMs +
      (jitterMs > 0 ? this.#jitterRng.next() * jitterMs : 0);
    if (!reorder) arrival = Math.max(arrival, this.#lastArrival);
    this.#lastArrival = Math.max(this.#lastArrival, arrival);
    this.#inFlight.push({
      at: arrival,
      seq: this.#seq++,
      data: datagram.slice(),
    });
    if (
      duplicateProbability > 0 && this.#dupRng.next() < duplicateProbability
    ) {
      this.#stats.duplicated++;
      this.#inFlight.push({
        at: arrival,
        seq: this.#seq++,
        data: datagram.slice(),
      });
    }
  }

  /** Datagrams whose arrival time is <= now, in arrival order (ties in send order). */
  receive(now: number): Uint8Array[] {
    this.#advance(now);
    const out: Uint8Array[] = [];
    for (;;) {
      const head = this.#inFlight.peek();
      if (head === undefined || head.at > now) break;
      this.#inFlight.pop();
      out.push(head.data);
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
