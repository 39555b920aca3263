/**
 * A sans-IO leaky-bucket pacer with a priority lane.
 *
 * Media packets wait in a FIFO and leave at the pacing rate, with at most a
 * small burst (so a keyframe does not hit a shallow bottleneck queue as one
 * burst); priority packets (input, control, feedback) skip the FIFO and
 * leave at the next poll, charging the bucket so the total stays paced. It
 * reads no clock: the caller passes `now` (µs) and sleeps until
 * `pollTimeout()`. See docs/DELTA.md.
 *
 * @module
 */

/** Parameters of {@linkcode Pacer}. */
export interface PacerConfig {
  /** Initial pacing rate, bit/s. */
  rateBps: number;
  /**
   * Most bytes that may leave back to back after an idle period. Default:
   * two 1200-byte packets or 1 ms at the rate, whichever is larger.
   */
  burstBytes?: number;
}

/** Counters of a {@linkcode Pacer}. */
export interface PacerStats {
  /** Media packets enqueued. */
  enqueued: number;
  /** Priority packets enqueued. */
  priorityEnqueued: number;
  /** Packets handed out by pollTransmit. */
  sent: number;
  /** Bytes handed out by pollTransmit. */
  bytesSent: number;
}

/** Smallest burst allowance, bytes: two full RIFT datagrams. */
export const MIN_BURST_BYTES = 2400;
/** The burst allowance covers this much time at the rate, µs. */
export const BURST_TIME_US = 1000;

/**
 * Leaky bucket: credit grows at the rate up to the burst allowance; a packet
 * may leave when the credit is not negative, and leaving costs its size
 * (credit may go negative, so any packet size works).
 *
 * @example
 * ```ts
 * const p = new Pacer({ rateBps: 10e6 });
 * p.enqueue(new Uint8Array(1200), 0);
 * p.pollTransmit(0); // the packet
 * p.enqueue(new Uint8Array(1200), 0);
 * p.pollTransmit(0); // undefined until pollTimeout()
 * ```
 */
export class Pacer {
  #rate: number;
  #burstOverride: number | undefined;
  #credit: number;
  #lastUs: number | undefined;
  #queue: Uint8Array[] = [];
  #head = 0;
  #queuedBytes = 0;
  #enqueueTimes: number[] = [];
  #priority: Uint8Array[] = [];
  #stats: PacerStats = { enqueued: 0, priorityEnqueued: 0, sent: 0, bytesSent: 0 };

  /** @param config initial rate and optional burst allowance */
  constructor(config: PacerConfig) {
    this.#rate = Pacer.#checkRate(config.rateBps);
    if (config.burstBytes !== undefined && !(config.burstBytes > 0)) {
      throw new RangeError("Pacer: burstBytes must be > 0");
    }
    this.#burstOverride = config.burstBytes;
    this.#credit = this.burstBytes;
  }

  static #checkRate(bps: number): number {
    if (!(Number.isFinite(bps) && bps > 0)) {
      throw new RangeError(`Pacer: rate must be a positive number, got ${bps}`);
    }
    return bps;
  }

  /** Current rate, bit/s. */
  get rateBps(): number {
    return this.#rate;
  }

  /** Burst allowance, bytes. */
  get burstBytes(): number {
    return this.#burstOverride ?? Math.max(MIN_BURST_BYTES, (this.#rate * BURST_TIME_US) / 8e6);
  }

  /** Media bytes waiting. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Media packets waiting. */
  get queuedPackets(): number {
    return this.#queue.length - this.#head;
  }

  /** How long the oldest waiting media packet has waited at `nowUs`, µs (0 if none). */
  queueDelayUs(nowUs: number): number {
    return this.queuedPackets > 0 ? Math.max(0, nowUs - this.#enqueueTimes[this.#head]) : 0;
  }

  /** Counters (a snapshot copy). */
  get stats(): PacerStats {
    return { ...this.#stats };
  }

  /** Changes the rate from `nowUs` on (credit earned so far keeps the old rate). */
  setRate(bps: number, nowUs: number): void {
    this.#refill(nowUs);
    this.#rate = Pacer.#checkRate(bps);
    this.#credit = Math.min(this.#credit, this.burstBytes);
  }

  /** Queues a packet; `priority` ones (input, control) skip the media queue. */
  enqueue(packet: Uint8Array, nowUs: number, priority = false): void {
    this.#refill(nowUs);
    if (priority) {
      this.#priority.push(packet);
      this.#stats.priorityEnqueued++;
      return;
    }
    this.#queue.push(packet);
    this.#enqueueTimes.push(nowUs);
    this.#queuedBytes += packet.length;
    this.#stats.enqueued++;
  }

  /** The next packet allowed to leave at `nowUs`, if any. Call until undefined. */
  pollTransmit(nowUs: number): Uint8Array | undefined {
    this.#refill(nowUs);
    let p: Uint8Array | undefined;
    if (this.#priority.length > 0) {
      p = this.#priority.shift()!;
    } else if (this.queuedPackets > 0 && this.#credit > -1e-6) {
      p = this.#queue[this.#head];
      this.#head++;
      this.#queuedBytes -= p.length;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#enqueueTimes = this.#enqueueTimes.slice(this.#head);
        this.#head = 0;
      }
    }
    if (p === undefined) return undefined;
    this.#credit -= p.length;
    this.#stats.sent++;
    this.#stats.bytesSent += p.length;
    return p;
  }

  /**
   * When the next packet may leave, µs: now-ish if a priority packet waits,
   * the moment the credit is back to zero if media waits, undefined if idle.
   */
  pollTimeout(): number | undefined {
    const last = this.#lastUs ?? 0;
    if (this.#priority.length > 0) return last;
    if (this.queuedPackets === 0) return undefined;
    if (this.#credit > -1e-6) return last;
    return last + Math.ceil((-this.#credit * 8e6) / this.#rate);
  }

  #refill(nowUs: number): void {
    if (!Number.isFinite(nowUs)) throw new RangeError("Pacer: now must be finite");
    if (this.#lastUs === undefined) {
      this.#lastUs = nowUs;
      return;
    }
    if (nowUs <= this.#lastUs) return; // time never goes back; earlier calls earn nothing
    this.#credit = Math.min(
      this.burstBytes,
      this.#credit + ((nowUs - this.#lastUs) * this.#rate) / 8e6,
    );
    this.#lastUs = nowUs;
  }
}
