/**
 * Adaptive FEC policy: how many Reed-Solomon parity shards a frame of k data
 * shards needs, given the loss the receiver has reported so far.
 *
 * The sender keeps per-packet EWMAs of the loss rate and of loss-run starts
 * (their ratio is the mean burst length), plugs them into a Gilbert-Elliott
 * loss-count distribution (the binomial tail when bursts are those of
 * independent loss) and picks the smallest parity count whose residual
 * frame-loss probability is at most the target, capped at a maximum overhead.
 * Pure: no clock, no randomness. See docs/FEC.md and docs/DELTA.md.
 *
 * @module
 */

/** Parameters of {@linkcode AdaptiveFecPolicy}. */
export interface AdaptiveFecConfig {
  /** Largest acceptable probability that a frame cannot be rebuilt (default 0.001). */
  targetResidual: number;
  /** Most parity as a fraction of k (default 0.5). */
  maxOverhead: number;
  /** EWMA weight per observed packet (default 1/2000: a window of about 2000 packets). */
  alpha: number;
  /** Loss rate assumed before any report (default 0.02). */
  initialLoss: number;
}

/** Defaults of {@linkcode AdaptiveFecConfig}. */
export const DEFAULT_ADAPTIVE_FEC: Readonly<AdaptiveFecConfig> = {
  targetResidual: 0.001,
  maxOverhead: 0.5,
  alpha: 1 / 2000,
  initialLoss: 0.02,
};

/**
 * Smallest loss rate the policy plans for. The EWMA's window is about 2000
 * packets, so a rate below about 1/2000 cannot be told from zero; planning for
 * 1e-4 (not zero) keeps one parity on large frames (k >= 11 at the default
 * target), while frames of a few datagrams, where one parity costs a third to
 * all of the frame, go unprotected until loss is actually measured.
 */
export const MIN_LOSS_ESTIMATE = 1e-4;

/**
 * P(more than m of k + m packets lost) under a Gilbert-Elliott chain with
 * mean loss `p` and mean burst `b` packets (loss 1 in the bad state, 0 in the
 * good one, started in its stationary distribution), for every m in
 * 0..maxM (index m of the result). With b = 1 / (1 - p) the chain is
 * memoryless and this is the binomial tail.
 *
 * @param k data shards, >= 1
 * @param maxM largest parity count considered, >= 0
 * @param p mean loss rate in (0, 1)
 * @param b mean burst length in packets, >= 1
 */
export function residualByParity(k: number, maxM: number, p: number, b: number): number[] {
  const n = k + maxM;
  const pBG = Math.min(1, 1 / b);
  const pGB = Math.min(1, (p * pBG) / (1 - p));
  const pi = pGB / (pGB + pBG);
  let good = new Float64Array(n + 2), bad = new Float64Array(n + 2);
  good[0] = 1 - pi;
  bad[0] = pi;
  const out: number[] = [];
  for (let t = 1; t <= n; t++) {
    // Packet t is lost iff the chain is bad; then the chain moves on.
    const ng = new Float64Array(n + 2), nb = new Float64Array(n + 2);
    for (let l = 0; l < t; l++) {
      const g = good[l], x = bad[l];
      ng[l] += g * (1 - pGB);
      nb[l] += g * pGB;
      ng[l + 1] += x * pBG;
      nb[l + 1] += x * (1 - pBG);
    }
    good = ng;
    bad = nb;
    if (t >= k) {
      const m = t - k;
      let ok = 0;
      for (let l = 0; l <= m; l++) ok += good[l] + bad[l];
      out.push(Math.max(0, 1 - ok));
    }
  }
  return out;
}

/**
 * Sender-side loss estimator fed by the receiver's per-packet reports
 * (received or lost, in send order), and the parity count it implies.
 */
export class AdaptiveFecPolicy {
  readonly #config: AdaptiveFecConfig;
  #p: number;
  #runs: number;
  #prevLost = false;

  /** @param config overrides of {@linkcode DEFAULT_ADAPTIVE_FEC} */
  constructor(config: Partial<AdaptiveFecConfig> = {}) {
    this.#config = { ...DEFAULT_ADAPTIVE_FEC, ...config };
    const c = this.#config;
    if (!(c.alpha > 0 && c.alpha <= 1)) throw new RangeError("AdaptiveFecPolicy: alpha in (0, 1]");
    if (!(c.maxOverhead > 0)) throw new RangeError("AdaptiveFecPolicy: maxOverhead > 0");
    if (!(c.targetResidual > 0 && c.targetResidual < 1)) {
      throw new RangeError("AdaptiveFecPolicy: targetResidual in (0, 1)");
    }
    if (!(c.initialLoss >= 0 && c.initialLoss < 1)) {
      throw new RangeError("AdaptiveFecPolicy: initialLoss in [0, 1)");
    }
    this.#p = c.initialLoss;
    // Run starts per packet for independent loss: p (1 - p) ≈ p / (1 + p) at small p.
    this.#runs = c.initialLoss / (1 + c.initialLoss);
  }

  /** Estimated loss rate (EWMA per packet). */
  get lossRate(): number {
    return this.#p;
  }

  /** Estimated mean loss-run length in packets (>= 1). */
  get meanBurst(): number {
    return this.#runs > 0 ? Math.max(1, this.#p / this.#runs) : 1;
  }

  /** Feeds the fate of consecutive packets, in send order (true = lost). */
  observe(lost: readonly boolean[]): void {
    const a = this.#config.alpha;
    for (const l of lost) {
      const start = l && !this.#prevLost;
      this.#p += a * ((l ? 1 : 0) - this.#p);
      this.#runs += a * ((start ? 1 : 0) - this.#runs);
      this.#prevLost = l;
    }
  }

  /**
   * Parity shards for a frame of `k` data shards (0 when even an unprotected
   * frame meets the target at the estimated loss, at most max(1, maxOverhead·k)).
   */
  parityFor(k: number): number {
    const cap = Math.max(1, Math.floor(this.#config.maxOverhead * k));
    const p = Math.min(0.5, Math.max(MIN_LOSS_ESTIMATE, this.#p));
    const b = Math.max(this.meanBurst, 1 / (1 - p));
    const tail = residualByParity(k, cap, p, b);
    for (let m = 0; m <= cap; m++) if (tail[m] <= this.#config.targetResidual) return m;
    return cap;
  }

  /** Recommended parity ratio m / k for frames of `k` data shards. */
  ratioFor(k: number): number {
    return k >= 1 ? this.parityFor(Math.floor(k)) / Math.floor(k) : 0;
  }
}
