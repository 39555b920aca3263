/**
 * A small, fast, seedable pseudo-random number generator for the simulator.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting
 * generator, 128 bits of state) seeded through splitmix32. It is not
 * cryptographic; it exists so that every simulated run is reproducible from
 * one seed.
 *
 * @module
 */

const TWO_POW_32 = 4294967296;

/** splitmix32 step: returns the next state and a well-mixed 32-bit output. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  return [next, z];
}

/**
 * Deterministic PRNG (sfc32 seeded via splitmix32).
 *
 * Same seed, same sequence, on every platform: all arithmetic is 32-bit
 * integer arithmetic.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * const x = rng.next(); // in [0, 1)
 * const die = rng.int(6) + 1;
 * const nonce = rng.bytes(12);
 * ```
 */
export class Rng {
  #a = 0;
  #b = 0;
  #c = 0;
  #d = 0;

  /**
   * @param seed any finite number; integers up to 2^53 are used in full, and
   * fractional parts are ignored.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new RangeError(`Rng seed must be a finite number, got ${seed}`);
    }
    const whole = Math.trunc(Math.abs(seed));
    const lo = whole >>> 0;
    const hi = Math.floor(whole / TWO_POW_32) >>> 0;
    let s = (lo ^ Math.imul(hi, 0x27d4eb2d) ^ (seed < 0 ? 0x5bd1e995 : 0)) >>>
      0;
    let out: number;
    [s, out] = splitmix32(s);
    this.#a = out;
    [s, out] = splitmix32(s);
    this.#b = out;
    [s, out] = splitmix32(s);
    this.#c = out;
    [s, out] = splitmix32(s);
    this.#d = out;
    // Warm up so that nearby seeds diverge fully.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** Next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    const t = (((a + b) >>> 0) + d) >>> 0;
    this.#d = (d + 1) >>> 0;
    this.#a = (b ^ (b >>> 9)) >>> 0;
    this.#b = (c + (c << 3)) >>> 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) >>> 0;
    return t;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /**
   * Uniform integer in [0, maxExclusive), without modulo bias.
   * `maxExclusive` must be an integer in [1, 2^32].
   */
  int(maxExclusive: number): number {
    if (
      !Number.isInteger(maxExclusive) || maxExclusive < 1 ||
      maxExclusive > TWO_POW_32
    ) {
      throw new RangeError(
        `Rng.int needs an integer bound in [1, 2^32], got ${maxExclusive}`,
      );
    }
    // Rejection sampling: accept only draws below the largest multiple.
    const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % maxExclusive;
  }

  /** `n` pseudo-random bytes; use as an endpoint's `random` source in simulation. */
  bytes(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) {
      throw new RangeError(
        `Rng.bytes needs a non-negative integer, got ${n}`,
      );
    }
    const out = new Uint8Array(n);
    let i = 0;
    while (i < n) {
      let w = this.nextUint32();
      for (let k = 0; k < 4 && i < n; k++, i++) {
        out[i] = w & 0xff;
        w >>>= 8;
      }
    }
    return out;
  }

  /**
   * A new, independent generator derived from this one (advances this one).
   * Use it to give each component its own stream, so that changing how many
   * numbers one component draws does not shift another's.
   */
  fork(): Rng {
    const child = new Rng(0);
    child.#a = this.nextUint32();
    child.#b = this.nextUint32();
    child.#c = this.nextUint32();
    child.#d = this.nextUint32();
    for (let i = 0; i < 12; i++) child.nextUint32();
    return child;
  }
}
