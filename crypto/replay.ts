/**
 * Sliding anti-replay window over 64-bit-style packet counters, using the
 * ring-of-words bitmap of RFC 6479 (the scheme WireGuard uses): advancing the
 * window clears whole 32-bit words instead of shifting the bitmap, so both
 * checking and committing are O(1) in the common case.
 *
 * A counter is accepted once. With a window of `size`, every counter in
 * `(highest - size, highest]` that has not been committed is still accepted,
 * anything at or below `highest - size` is "too-old", and anything above
 * `highest` is new.
 *
 * @module
 */

/** Smallest (and default) window size in counters. */
export const MIN_REPLAY_WINDOW = 2048;

/** Outcome of {@linkcode ReplayWindow.check}. */
export type ReplayCheck = "ok" | "replayed" | "too-old";

const WORD_BITS = 32;

/**
 * Anti-replay window. {@linkcode ReplayWindow.check} is pure; call
 * {@linkcode ReplayWindow.commit} only after the packet authenticated.
 */
export class ReplayWindow {
  /** Number of trailing counters below {@linkcode highest} that are tracked. */
  readonly size: number;
  readonly #words: Uint32Array;
  readonly #wordCount: number;
  #highest = -1;

  /**
   * Creates an empty window (nothing seen yet).
   *
   * @param size window size in counters; values below 2048 are raised to 2048,
   *   and the size is rounded up to a multiple of 32.
   * @throws {RangeError} if `size` is not a finite positive number.
   */
  constructor(size: number = MIN_REPLAY_WINDOW) {
    if (!Number.isFinite(size) || size <= 0) {
      throw new RangeError(`replay window size must be positive, got ${size}`);
    }
    const rounded = Math.ceil(Math.max(size, MIN_REPLAY_WINDOW) / WORD_BITS) *
      WORD_BITS;
    this.size = rounded;
    // One extra word: the word holding `highest` is partly "in the future",
    // so size/32 + 1 words guarantee a full `size` counters of history.
    this.#wordCount = rounded / WORD_BITS + 1;
    this.#words = new Uint32Array(this.#wordCount);
  }

  /** Highest committed counter, or -1 before the first commit. */
  get highest(): number {
    return this.#highest;
  }

  /**
   * Classifies `counter` without changing any state. A counter that is not a
   * non-negative safe integer is reported as "too-old" (it can never be accepted).
   */
  check(counter: number): ReplayCheck {
    if (!Number.isSafeInteger(counter) || counter < 0) return "too-old";
    if (counter > this.#highest) return "ok";
    if (counter + this.size <= this.#highest) return "too-old";
    const word = this.#words[this.#wordIndex(counter)];
    return (word >>> (counter % WORD_BITS)) & 1 ? "replayed" : "ok";
  }

  /**
   * Marks `counter` as seen, sliding the window forward if it is the new
   * highest. Does nothing if {@linkcode check} would not return "ok".
   */
  commit(counter: number): void {
    if (this.check(counter) !== "ok") return;
    if (counter > this.#highest) {
      const newWord = Math.floor(counter / WORD_BITS);
      if (this.#highest < 0) {
        this.#words.fill(0);
      } else {
        const curWord = Math.floor(this.#highest / WORD_BITS);
        const advance = Math.min(newWord - curWord, this.#wordCount);
        for (let i = 1; i <= advance; i++) {
          this.#words[(curWord + i) % this.#wordCount] = 0;
        }
      }
      this.#highest = counter;
    }
    this.#words[this.#wordIndex(counter)] |= 1 << (counter % WORD_BITS);
  }

  #wordIndex(counter: number): number {
    return Math.floor(counter / WORD_BITS) % this.#wordCount;
  }
}
