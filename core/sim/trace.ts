/**
 * Mahimahi-style delivery traces: a recorded schedule of moments at which
 * one MTU-sized packet may leave a bottleneck queue.
 *
 * @module
 */

/** Bytes that one delivery opportunity lets leave the queue (Mahimahi's PACKET_SIZE). */
export const TRACE_PACKET_BYTES = 1500;

/**
 * A repeating schedule of delivery opportunities.
 *
 * Opportunity times are aligned to virtual time 0: the trace's first period
 * covers (0, periodMs], the next (periodMs, 2 * periodMs], and so on, exactly
 * as Mahimahi repeats a trace from the start when it runs out (the period is
 * the last timestamp of the file).
 *
 * Opportunities are addressed both by time and by a global index (the k-th
 * opportunity since time 0, counting repeats); several opportunities may
 * share one millisecond.
 */
export class DeliveryTrace {
  readonly #times: Float64Array;
  /** Length of one repetition of the trace, in ms (its last timestamp). */
  readonly periodMs: number;

  /**
   * @param times opportunity times in ms, non-decreasing, non-negative, with
   * a positive last value (the period).
   */
  constructor(times: readonly number[]) {
    if (times.length === 0) {
      throw new RangeError("DeliveryTrace: a trace needs at least one entry");
    }
    let prev = 0;
    for (let i = 0; i < times.length; i++) {
      const t = times[i];
      if (!Number.isFinite(t) || t < 0) {
        throw new RangeError(
          `DeliveryTrace: entry ${i} is not a non-negative time: ${t}`,
        );
      }
      if (t < prev) {
        throw new RangeError(
          `DeliveryTrace: entry ${i} (${t} ms) goes back in time from ${prev} ms`,
        );
      }
      prev = t;
    }
    const period = times[times.length - 1];
    if (period <= 0) {
      throw new RangeError(
        "DeliveryTrace: the trace must last a nonzero time (last entry > 0)",
      );
    }
    this.#times = Float64Array.from(times);
    this.periodMs = period;
  }

  /** Number of opportunities in one period. */
  get opportunitiesPerPeriod(): number {
    return this.#times.length;
  }

  /** Mean capacity in bits per second: opportunities × 1500 bytes over the period. */
  get meanCapacityBps(): number {
    return (this.#times.length * TRACE_PACKET_BYTES * 8 * 1000) /
      this.periodMs;
  }

  /** Time (ms) of the opportunity with global index `index` (0-based). */
  opportunityTime(index: number): number {
    const n = this.#times.length;
    const rep = Math.floor(index / n);
    return this.#times[index - rep * n] + rep * this.periodMs;
  }

  /**
   * Global index of the first opportunity strictly later than `afterMs`.
   * Strictly later, as in Mahimahi, where opportunities up to the current
   * millisecond are spent before an arriving packet joins the queue.
   */
  opportunityIndexAfter(afterMs: number): number {
    const n = this.#times.length;
    if (afterMs < 0) return 0;
    const rep = Math.floor(afterMs / this.periodMs);
    const within = afterMs - rep * this.periodMs;
    // first i with times[i] > within
    let lo = 0, hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#times[mid] > within) hi = mid;
      else lo = mid + 1;
    }
    return rep * n + lo;
  }

  /** Time (ms) of the first opportunity strictly later than `afterMs`. */
  nextOpportunity(afterMs: number): number {
    return this.opportunityTime(this.opportunityIndexAfter(afterMs));
  }
}

/**
 * Parses a Mahimahi trace: one integer per line, a millisecond at which one
 * 1500-byte packet may leave; a value repeated k times is k opportunities in
 * that millisecond. Blank lines are ignored. Pure: takes the text, reads no
 * file.
 *
 * @param text the trace file's contents
 * @param name used in error messages
 */
export function parseMahimahiTrace(
  text: string,
  name = "trace",
): DeliveryTrace {
  const times: number[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    if (!/^\d+$/.test(line)) {
      throw new SyntaxError(
        `${name}:${i + 1}: expected a non-negative integer, got "${line}"`,
      );
    }
    times.push(Number(line));
  }
  if (times.length === 0) {
    throw new SyntaxError(`${name}: no entries`);
  }
  try {
    return new DeliveryTrace(times);
  } catch (e) {
    throw new SyntaxError(`${name}: ${(e as Error).message}`);
  }
}

/** What {@linkcode traceOutages} found in a stretch of a trace. */
export interface TraceOutages {
  /** Mean capacity over the stretch, bit/s. */
  meanBps: number;
  /** Whole seconds of the stretch whose capacity is below the floor. */
  secondsBelowFloor: number;
  /** Time spent in gaps longer than the gap threshold, ms. */
  gapTotalMs: number;
  /** The longest gap between consecutive opportunities, ms. */
  longestGapMs: number;
}

/**
 * Outages in the first `untilMs` of a trace: how long it goes without a
 * delivery opportunity (gaps longer than `gapMs`, where whatever is queued
 * waits), and how many of its seconds carry less than `floorBps`.
 */
export function traceOutages(
  trace: DeliveryTrace,
  untilMs: number,
  gapMs: number,
  floorBps: number,
): TraceOutages {
  const perSecond = new Array<number>(Math.ceil(untilMs / 1000)).fill(0);
  let gapTotalMs = 0, longestGapMs = 0, count = 0, prev: number | undefined;
  for (let i = 0;; i++) {
    const t = trace.opportunityTime(i);
    if (t >= untilMs) break;
    count++;
    perSecond[Math.floor(t / 1000)]++;
    if (prev !== undefined) {
      const gap = t - prev;
      if (gap > gapMs) gapTotalMs += gap;
      longestGapMs = Math.max(longestGapMs, gap);
    }
    prev = t;
  }
  const bitsPerOpportunity = TRACE_PACKET_BYTES * 8;
  return {
    meanBps: (count * bitsPerOpportunity * 1000) / untilMs,
    secondsBelowFloor: perSecond.filter((n) => n * bitsPerOpportunity < floorBps).length,
    gapTotalMs,
    longestGapMs,
  };
}
