/**
 * A small single-consumer async queue: the bridge between a driver's
 * synchronous event loop and `for await` consumers.
 *
 * @module
 */

/** A FIFO that producers push to synchronously and one consumer drains with `for await`. */
export class AsyncQueue<T> {
  readonly #items: T[] = [];
  readonly #limit: number;
  #waiter: ((result: IteratorResult<T, undefined>) => void) | undefined;
  #ended = false;
  #discarded = 0;

  /**
   * @param limit most items held while nobody consumes; past it the oldest is discarded
   * (and counted in {@linkcode AsyncQueue.discarded}). Default: unbounded.
   */
  constructor(limit: number = Infinity) {
    this.#limit = limit;
  }

  /** Items discarded because the queue was full. */
  get discarded(): number {
    return this.#discarded;
  }

  /** Items waiting for the consumer. */
  get length(): number {
    return this.#items.length;
  }

  /** Whether {@linkcode AsyncQueue.end} was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Adds an item; ignored once the queue has ended. */
  push(item: T): void {
    if (this.#ended) return;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter({ value: item, done: false });
      return;
    }
    this.#items.push(item);
    if (this.#items.length > this.#limit) {
      this.#items.shift();
      this.#discarded++;
    }
  }

  /** Ends the queue: the consumer gets what is buffered, then `done`. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.({ value: undefined, done: true });
  }

  /** The next item, waiting for one if needed; `done` once ended and drained. */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#items.length > 0) {
      return Promise.resolve({ value: this.#items.shift() as T, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter !== undefined) {
      return Promise.reject(
        new Error("AsyncQueue has a single consumer; next() is already pending"),
      );
    }
    return new Promise((resolve) => this.#waiter = resolve);
  }

  /**
   * An iterator over the queue. Leaving a `for await` loop early stops that
   * iterator only; items not yet taken stay for the next one.
   */
  iterate(): AsyncIterableIterator<T> {
    let stopped = false;
    const iterator: AsyncIterableIterator<T> = {
      next: (): Promise<IteratorResult<T, undefined>> =>
        stopped ? Promise.resolve({ value: undefined, done: true }) : this.next(),
      return: (): Promise<IteratorResult<T, undefined>> => {
        stopped = true;
        const waiter = this.#waiter;
        this.#waiter = undefined;
        waiter?.({ value: undefined, done: true });
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}
