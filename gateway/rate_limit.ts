/**
 * Token buckets, in memory, per gateway instance.
 *
 * Trade-off (see docs/SIGNALING.md): buckets live in the instance's memory,
 * not in KV. Checking a limit then costs no KV round trip and writes nothing
 * (a refused or malformed message leaves KV byte-for-byte unchanged), but the
 * limit is per instance: with N instances behind a load balancer a client can
 * get up to N times the rate. Login also costs a KV write per challenge, and
 * challenges expire, so the KV itself bounds what a distributed flood stores.
 *
 * @module
 */

/** Shape of one limit. */
export interface BucketSpec {
  /** Most tokens held (the burst). */
  burst: number;
  /** Tokens added per second. */
  perSecond: number;
}

/** A set of token buckets keyed by a string (identity key or source address). */
export class RateLimiter {
  readonly #spec: BucketSpec;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #maxKeys: number;

  /**
   * @param spec burst and refill rate.
   * @param maxKeys buckets kept at most; when full, buckets that have refilled
   *   completely are dropped first (they carry no information), then the oldest.
   */
  constructor(spec: BucketSpec, maxKeys = 100_000) {
    this.#spec = spec;
    this.#maxKeys = maxKeys;
  }

  /** Takes one token for `key` at time `nowMs`; false if the bucket is empty. */
  take(key: string, nowMs: number): boolean {
    const { burst, perSecond } = this.#spec;
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#evict(nowMs);
      b = { tokens: burst, at: nowMs };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + Math.max(0, nowMs - b.at) * perSecond / 1000);
      b.at = nowMs;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Buckets currently held. */
  get size(): number {
    return this.#buckets.size;
  }

  #evict(nowMs: number): void {
    const { burst, perSecond } = this.#spec;
    for (const [k, b] of this.#buckets) {
      if (b.tokens + (nowMs - b.at) * perSecond / 1000 >= burst) this.#buckets.delete(k);
    }
    // Still full: drop the oldest insertion (Map keeps insertion order).
    while (this.#buckets.size >= this.#maxKeys) {
      const first = this.#buckets.keys().next();
      if (first.done) break;
      this.#buckets.delete(first.value);
    }
  }
}
