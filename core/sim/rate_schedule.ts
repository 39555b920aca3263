/**
 * Piecewise-constant bottleneck capacity: a list of steps `{atMs, bps}`, and
 * the pure arithmetic of serializing bits through it.
 *
 * @module
 */

/** From `atMs` on (until the next step), the bottleneck serializes at `bps` bit/s. */
export interface RateStep {
  /** Time the step starts, in ms on the link's clock (>= 0). */
  readonly atMs: number;
  /** Capacity from then on, in bit/s (> 0). */
  readonly bps: number;
}

/**
 * Checks a schedule: at least one step, times finite, non-negative and strictly
 * increasing, rates finite and positive. Returns a frozen copy.
 *
 * @throws RangeError describing the first bad step
 */
export function validateRateSchedule(steps: readonly RateStep[]): readonly RateStep[] {
  if (steps.length === 0) throw new RangeError("rate schedule: needs at least one step");
  let prev = -Infinity;
  const out: RateStep[] = [];
  for (let i = 0; i < steps.length; i++) {
    const { atMs, bps } = steps[i];
    if (!Number.isFinite(atMs) || atMs < 0) {
      throw new RangeError(`rate schedule: step ${i} atMs must be >= 0, got ${atMs}`);
    }
    if (atMs <= prev) {
      throw new RangeError(`rate schedule: step ${i} atMs ${atMs} is not after ${prev}`);
    }
    if (!Number.isFinite(bps) || bps <= 0) {
      throw new RangeError(`rate schedule: step ${i} bps must be > 0, got ${bps}`);
    }
    prev = atMs;
    out.push({ atMs, bps });
  }
  return Object.freeze(out);
}

/**
 * Capacity in bit/s at time `t`: the last step with `atMs <= t`, or
 * `before` (the first step's rate when undefined) ahead of the first step.
 */
export function rateAt(steps: readonly RateStep[], t: number, before?: number): number {
  let lo = 0, hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (steps[mid].atMs <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? (before ?? steps[0].bps) : steps[lo - 1].bps;
}

/**
 * When a serializer that starts sending `bits` at `startMs` finishes, if its
 * rate follows `steps` (and `before` ahead of the first step): the integral of
 * the rate from `startMs` reaches `bits`.
 */
export function serializationEndMs(
  steps: readonly RateStep[],
  startMs: number,
  bits: number,
  before?: number,
): number {
  let t = startMs;
  let left = bits;
  // First step strictly after t.
  let i = 0;
  while (i < steps.length && steps[i].atMs <= t) i++;
  for (;;) {
    const bps = i === 0 ? (before ?? steps[0].bps) : steps[i - 1].bps;
    const end = t + (left * 1000) / bps;
    if (i >= steps.length || end <= steps[i].atMs) return end;
    left -= ((steps[i].atMs - t) * bps) / 1000;
    t = steps[i].atMs;
    i++;
  }
}
