/** Counting semaphore: at most `limit` store requests in flight across a device. */
export class Limiter {
  readonly limit: number;
  #active = 0;
  #peak = 0;
  readonly #queue: Array<() => void> = [];

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`concurrency limit must be at least 1, got ${limit}`);
    this.limit = limit;
  }

  get active(): number {
    return this.#active;
  }
  /** Most requests ever in flight at once. */
  get peak(): number {
    return this.#peak;
  }
  get waiting(): number {
    return this.#queue.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.limit) await new Promise<void>((resolve) => this.#queue.push(resolve));
    else this.#active++;
    this.#peak = Math.max(this.#peak, this.#active);
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter so a newcomer cannot overtake it.
      const next = this.#queue.shift();
      if (next) next();
      else this.#active--;
    }
  }
}
