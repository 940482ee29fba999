/** Helpers that keep synchronous plugin results synchronous (no promise per request). */
import type { Awaitable } from '@nbdts/plugin-api';

export function isPromiseLike<T>(x: Awaitable<T> | PromiseLike<T>): x is PromiseLike<T> {
  return x !== null && typeof x === 'object' && typeof (x as { then?: unknown }).then === 'function';
}

/** `fn(await r)`, but without awaiting when `r` is a plain value. */
export function after<T, U>(r: Awaitable<T>, fn: (v: T) => Awaitable<U>): Awaitable<U> {
  return isPromiseLike(r) ? Promise.resolve(r).then(fn) : fn(r);
}

/**
 * Limits how many calls run at once. A finished call hands its slot straight
 * to the next waiter, so the limit holds even across microtask gaps.
 */
export class Limiter {
  #active = 0;
  readonly #queue: Array<() => void> = [];
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  run<T>(fn: () => Awaitable<T>): Awaitable<T> {
    if (this.#active < this.#limit) {
      this.#active++;
      return this.#invoke(fn);
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(() => {
        try {
          const r = this.#invoke(fn);
          if (isPromiseLike(r)) Promise.resolve(r).then(resolve, reject);
          else resolve(r);
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  /** Runs fn in a slot already counted in `active`, releasing it when fn settles. */
  #invoke<T>(fn: () => Awaitable<T>): Awaitable<T> {
    let r: Awaitable<T>;
    try {
      r = fn();
    } catch (err) {
      this.#release();
      throw err;
    }
    if (!isPromiseLike(r)) {
      this.#release();
      return r;
    }
    return Promise.resolve(r).then(
      (v) => {
        this.#release();
        return v;
      },
      (err: unknown) => {
        this.#release();
        throw err;
      },
    );
  }

  #release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#active--;
  }
}
