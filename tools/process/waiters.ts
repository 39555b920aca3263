/**
 * Callers waiting for a condition over state that a reader loop updates (lines
 * of a child's output, events of a probe): the loop calls `notify()` after
 * each change, and each waiter re-checks its condition then.
 *
 * @module
 */

/** Pending waits on conditions that change when {@linkcode Waiters.notify} is called. */
export class Waiters {
  readonly #checks = new Set<() => void>();

  /** Re-checks every pending wait (call after the watched state changed or the source ended). */
  notify(): void {
    for (const check of [...this.#checks]) check();
  }

  /**
   * Resolves with the first value `poll` returns other than `undefined`, checked now
   * and on every `notify()`; rejects with what `poll` throws. After `timeoutMs` it
   * settles with `onTimeout()` instead (which may throw, too).
   */
  async wait<T>(poll: () => T | undefined, timeoutMs: number, onTimeout: () => T): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const settleWith = (get: () => T | undefined) => {
      try {
        const value = get();
        if (value !== undefined) resolve(value);
      } catch (error) {
        reject(error);
      }
    };
    const check = () => settleWith(poll);
    const timer = setTimeout(() => settleWith(onTimeout), timeoutMs);
    this.#checks.add(check);
    try {
      check();
      return await promise;
    } finally {
      clearTimeout(timer);
      this.#checks.delete(check);
    }
  }
}
