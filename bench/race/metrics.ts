/**
 * Figures of one contender on one case, from what crossed the bottleneck
 * (per-packet send/receive times and sizes, from the link emulator) and what
 * the receiver decoded (per-frame send/receive times).
 *
 * Definitions (RFC 8868 section 4 in spirit):
 * - throughput: bits delivered over the window / window length;
 * - utilisation: bits delivered / bits the bottleneck could carry (the
 *   integral of its capacity over the window), capped at 1;
 * - queuing delay: one-way delay of each delivered packet minus the base
 *   (propagation) delay, clamped at 0; mean and p95 over packets;
 * - frame delay: decode time minus send time of each decoded frame; p95;
 * - frames lost: frames sent but never decoded (the last second of the
 *   run, still in flight when it stopped, is not counted);
 * - recovery after a capacity drop: how long until the sending rate (over
 *   the trailing 100 ms, so the figure includes that window's lag) is under
 *   the new capacity, and until the queuing delay is under 20 ms and stays
 *   there for a second (or until the next change), at the bin's resolution;
 * - ramp after a capacity rise: how long until the delivered rate reaches 90%
 *   of the new capacity.
 *
 * Pure: times are plain numbers in ms on one clock.
 *
 * @module
 */

/** One datagram at the bottleneck: `recvMs` undefined when it was dropped or lost. */
export interface PacketRecord {
  readonly sendMs: number;
  readonly recvMs?: number;
  readonly bytes: number;
}

/** One frame: `recvMs` undefined when it was never decoded. */
export interface FrameRecord {
  readonly seq: number;
  readonly sendMs: number;
  readonly recvMs?: number;
}

/** A capacity change of the bottleneck. */
export interface CapacityChange {
  readonly atMs: number;
  readonly fromBps: number;
  readonly toBps: number;
}

/** What {@link computeMetrics} needs besides the records. */
export interface MetricsInput {
  readonly packets: readonly PacketRecord[];
  readonly frames: readonly FrameRecord[];
  /** Bottleneck capacity (bit/s) at a time (ms). */
  readonly capacityAt: (tMs: number) => number;
  /** Capacity changes inside the window, for recovery figures. */
  readonly changes: readonly CapacityChange[];
  /** One-way propagation delay in ms. */
  readonly baseDelayMs: number;
  /** Measurement window [startMs, endMs). */
  readonly startMs: number;
  readonly endMs: number;
  /** Time-series bin in ms; default 200. */
  readonly binMs?: number;
  /** Queuing delay under which the queue counts as drained; default 20 ms. */
  readonly drainedMs?: number;
}

/** Recovery figures after one capacity change (ms after the change; undefined = never). */
export interface Recovery {
  readonly atMs: number;
  readonly fromBps: number;
  readonly toBps: number;
  /** Drops: sending rate back under the new capacity. */
  readonly rateUnderMs?: number;
  /** Drops: queuing delay under `drainedMs` for good (1 s or until the next change). */
  readonly qdelayDrainedMs?: number;
  /** Rises: delivered rate at 90% of the new capacity. */
  readonly util90Ms?: number;
}

/** One bin of the time series. */
export interface Bin {
  /** Bin start (ms). */
  readonly t: number;
  /** Bits/s sent in the bin (by send time). */
  readonly sendBps: number;
  /** Bits/s delivered in the bin (by receive time). */
  readonly recvBps: number;
  /** Capacity at the bin's middle. */
  readonly capacityBps: number;
  /** Mean queuing delay of packets received in the bin (undefined if none). */
  readonly qdelayMs?: number;
}

/** The figures of one run. */
export interface Metrics {
  readonly throughputBps: number;
  readonly utilisation: number;
  readonly qdelayMeanMs: number;
  readonly qdelayP95Ms: number;
  readonly frameDelayP95Ms: number;
  readonly framesSent: number;
  readonly framesLost: number;
  readonly packetsLost: number;
  readonly recoveries: Recovery[];
  readonly series: Bin[];
}

/** The q-quantile (0..1) of `xs` by nearest rank; NaN for an empty list. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i];
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Integral of capacity over [a, b) in bits, by 10 ms steps (capacities are piecewise constant). */
export function capacityBits(capacityAt: (t: number) => number, a: number, b: number): number {
  let bits = 0;
  for (let t = a; t < b; t += 10) {
    const dt = Math.min(10, b - t);
    bits += capacityAt(t + dt / 2) * dt / 1000;
  }
  return bits;
}

/** Computes every figure of {@link Metrics}. */
export function computeMetrics(input: MetricsInput): Metrics {
  const { startMs, endMs, baseDelayMs } = input;
  const binMs = input.binMs ?? 200;
  const drained = input.drainedMs ?? 20;
  if (!(endMs > startMs)) throw new RangeError(`computeMetrics: empty window ${startMs}..${endMs}`);
  const inWin = (t: number) => t >= startMs && t < endMs;

  let deliveredBits = 0;
  let packetsLost = 0;
  const qdelays: number[] = [];
  const nBins = Math.ceil((endMs - startMs) / binMs);
  const sendBits = new Float64Array(nBins);
  const recvBits = new Float64Array(nBins);
  const qSum = new Float64Array(nBins);
  const qN = new Float64Array(nBins);
  for (const p of input.packets) {
    if (inWin(p.sendMs)) {
      sendBits[Math.floor((p.sendMs - startMs) / binMs)] += p.bytes * 8;
      if (p.recvMs === undefined) packetsLost++;
    }
    if (p.recvMs === undefined || !inWin(p.recvMs)) continue;
    deliveredBits += p.bytes * 8;
    const q = Math.max(0, p.recvMs - p.sendMs - baseDelayMs);
    qdelays.push(q);
    const b = Math.floor((p.recvMs - startMs) / binMs);
    recvBits[b] += p.bytes * 8;
    qSum[b] += q;
    qN[b]++;
  }
  const series: Bin[] = [];
  for (let b = 0; b < nBins; b++) {
    const t = startMs + b * binMs;
    const w = Math.min(binMs, endMs - t) / 1000;
    series.push({
      t,
      sendBps: sendBits[b] / w,
      recvBps: recvBits[b] / w,
      capacityBps: input.capacityAt(t + binMs / 2),
      qdelayMs: qN[b] > 0 ? qSum[b] / qN[b] : undefined,
    });
  }

  // Frames: the last second may still be in flight when the run stops.
  const frameCut = endMs - 1000;
  const sentFrames = input.frames.filter((f) => inWin(f.sendMs) && f.sendMs < frameCut);
  const frameDelays = input.frames
    .filter((f) => f.recvMs !== undefined && inWin(f.sendMs))
    .map((f) => f.recvMs! - f.sendMs);

  const sends = input.packets
    .filter((p) => inWin(p.sendMs))
    .map((p) => [p.sendMs, p.bytes * 8] as const)
    .sort((a, b) => a[0] - b[0]);
  const recoveries = input.changes
    .filter((c) => c.atMs >= startMs && c.atMs < endMs)
    .map((c, i, all) => recovery(c, all[i + 1]?.atMs ?? endMs, series, sends, binMs, drained));

  const capBits = capacityBits(input.capacityAt, startMs, endMs);
  return {
    throughputBps: deliveredBits / ((endMs - startMs) / 1000),
    utilisation: capBits > 0 ? Math.min(1, deliveredBits / capBits) : NaN,
    qdelayMeanMs: mean(qdelays),
    qdelayP95Ms: quantile(qdelays, 0.95),
    frameDelayP95Ms: quantile(frameDelays, 0.95),
    framesSent: sentFrames.length,
    framesLost: sentFrames.filter((f) => f.recvMs === undefined).length,
    packetsLost,
    recoveries,
    series,
  };
}

/** First time `t` in [from + window, until) (10 ms steps) at which bits sent in [t - window, t) fit `bps`. */
function rateUnder(
  sends: readonly (readonly [number, number])[],
  from: number,
  until: number,
  bps: number,
  windowMs = 100,
): number | undefined {
  let lo = 0, hi = 0, bits = 0;
  for (let t = from + windowMs; t < until; t += 10) {
    while (hi < sends.length && sends[hi][0] < t) bits += sends[hi++][1];
    while (lo < hi && sends[lo][0] < t - windowMs) bits -= sends[lo++][1];
    if (bits * 1000 / windowMs <= bps) return t;
  }
  return undefined;
}

function recovery(
  c: CapacityChange,
  untilMs: number,
  series: readonly Bin[],
  sends: readonly (readonly [number, number])[],
  binMs: number,
  drainedMs: number,
): Recovery {
  const after = series.filter((b) => b.t >= c.atMs && b.t < untilMs);
  if (c.toBps < c.fromBps) {
    const under = rateUnder(sends, c.atMs, untilMs, c.toBps);
    // Drained for good: from some bin on, every bin with packets stays under the
    // threshold for 1 s (or to the end of the phase).
    let drainedAt: number | undefined;
    for (let i = 0; i < after.length; i++) {
      const horizon = after[i].t + 1000;
      const span = after.filter((b) => b.t >= after[i].t && b.t < horizon);
      if (span.every((b) => b.qdelayMs === undefined || b.qdelayMs < drainedMs)) {
        if (after[i].qdelayMs !== undefined) {
          drainedAt = after[i].t;
          break;
        }
      }
    }
    return {
      ...c,
      rateUnderMs: under !== undefined ? under - c.atMs : undefined,
      qdelayDrainedMs: drainedAt !== undefined ? drainedAt - c.atMs : undefined,
    };
  }
  // Rise: delivered rate, smoothed over 500 ms, at 90% of the new capacity.
  const k = Math.max(1, Math.round(500 / binMs));
  for (let i = 0; i + k <= after.length; i++) {
    const r = after.slice(i, i + k).reduce((a, b) => a + b.recvBps, 0) / k;
    if (r >= 0.9 * c.toBps) return { ...c, util90Ms: after[i + k - 1].t + binMs - c.atMs };
  }
  return { ...c };
}

/**
 * Bit/s over time from cumulative byte counters sampled at times `t` (e.g.
 * getStats' bytesReceived): one point per sample after the first.
 */
export function rateFromCounters(
  samples: readonly { t: number; bytes: number }[],
): { t: number; bps: number }[] {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = samples[i].t - samples[i - 1].t;
    if (dt > 0) {
      out.push({ t: samples[i].t, bps: (samples[i].bytes - samples[i - 1].bytes) * 8000 / dt });
    }
  }
  return out;
}
