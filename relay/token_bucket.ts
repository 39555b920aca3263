/**
 * A token bucket over a caller-supplied clock (sans-IO): `rate` tokens per
 * second, at most `burst` banked.
 *
 * @module
 */

/** Token bucket; starts full. */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;

  /**
   * @param ratePerSecond tokens added per second (> 0).
   * @param burst most tokens banked (> 0).
   * @param nowMs the current time in ms.
   */
  constructor(ratePerSecond: number, burst: number, nowMs: number) {
    if (!(ratePerSecond > 0) || !(burst > 0)) throw new RangeError("rate and burst must be > 0");
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = nowMs;
  }

  /** Takes `n` tokens if there are that many at `nowMs`; returns whether it did. */
  take(n: number, nowMs: number): boolean {
    if (nowMs > this.#last) {
      this.#tokens = Math.min(
        this.#burst,
        this.#tokens + ((nowMs - this.#last) * this.#rate) / 1000,
      );
      this.#last = nowMs;
    }
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** Changes rate and burst, keeping the banked tokens (capped at the new burst). */
  reconfigure(ratePerSecond: number, burst: number): void {
    if (!(ratePerSecond > 0) || !(burst > 0)) throw new RangeError("rate and burst must be > 0");
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#tokens = Math.min(this.#tokens, burst);
  }
}
