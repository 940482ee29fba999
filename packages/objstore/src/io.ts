import { md5Offload } from './md5.ts';
import { log, NbdError } from '@nbdts/plugin-api';
import { StoreError, type ObjectStore } from './store.ts';
import type { Layout } from './layout.ts';
import { Limiter } from './limiter.ts';
import { VerifyError, withRetry, type RetryPolicy } from './retry.ts';
import type { DeviceStats } from './stats.ts';

function normalizeEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
}

export interface IoOptions {
  maxInFlight: number;
  retry: RetryPolicy;
  /** Per attempt; a timed-out attempt is aborted and retried as transient. 0 = none. */
  requestTimeoutMs: number;
  /** Compare the PUT's ETag with the MD5 we computed (off for stores whose ETags are not MD5s, e.g. SSE-KMS). */
  verifyEtag: boolean;
}

/**
 * Every store call the block layer makes goes through here: bounded
 * concurrency, a timeout per attempt, retries with backoff, length and MD5
 * checks, counters. A call that fails for good throws NbdError('EIO') naming
 * the object and the reason, and logs it once.
 */
export class ObjectIO {
  readonly store: ObjectStore;
  readonly layout: Layout;
  readonly limiter: Limiter;
  readonly #opts: IoOptions;
  readonly #stats: DeviceStats;

  constructor(store: ObjectStore, layout: Layout, opts: IoOptions, stats: DeviceStats) {
    this.store = store;
    this.layout = layout;
    this.limiter = new Limiter(opts.maxInFlight);
    this.#opts = opts;
    this.#stats = stats;
  }

  /** Chunk i's bytes, or null when its object does not exist (reads as zeros). */
  async getChunk(i: number): Promise<Buffer | null> {
    const { key, range } = this.layout.locate(i);
    if (range) return this.#getRange(key, range);
    const want = this.layout.chunkLength(i);
    return this.#call(`GET ${key}`, async (signal) => {
      this.#stats.gets++;
      const body = await this.store.get(key, undefined, signal);
      if (body === null) {
        this.#stats.getMisses++;
        return null;
      }
      this.#stats.getBytes += body.length;
      if (!this.layout.acceptsLength(i, body.length)) {
        throw new VerifyError(`short or long body: got ${body.length} bytes, expected ${want}`);
      }
      return body.length === want ? body : body.subarray(0, want);
    });
  }

  /** Chunks i..i+n-1 of a ranged layout (Layout.locateRun) in one GET: their bytes back to back. */
  async getRun(i: number, n: number): Promise<Buffer> {
    const { key, range } = this.layout.locateRun!(i, n);
    return this.#getRange(key, range);
  }

  /** A byte range of an object that must exist: its absence is an error, not zeros. */
  #getRange(key: string, range: { offset: number; length: number }): Promise<Buffer> {
    return this.#call(`GET ${key} bytes ${range.offset}+${range.length}`, async (signal) => {
      this.#stats.gets++;
      const body = await this.store.get(key, range, signal);
      if (body === null) throw new StoreError('fatal', 'object not found');
      this.#stats.getBytes += body.length;
      if (body.length !== range.length)
        throw new VerifyError(`short or long body: got ${body.length} bytes, expected ${range.length}`);
      return body;
    });
  }

  /** Store chunk i (whole-object layouts only); resolves when the store acknowledged a verified copy. */
  async putChunk(i: number, data: Buffer): Promise<void> {
    const { key } = this.layout.locate(i);
    const md5 = await md5Offload.hex(data);
    await this.#call(`PUT ${key}`, async (signal) => {
      this.#stats.puts++;
      const etag = await this.store.put(key, data, { md5 }, signal);
      this.#stats.putBytes += data.length;
      if (this.#opts.verifyEtag && normalizeEtag(etag) !== md5) {
        throw new VerifyError(`ETag ${etag} does not match the MD5 ${md5} of the data sent`);
      }
    });
  }

  async deleteChunk(i: number): Promise<void> {
    const { key } = this.layout.locate(i);
    await this.#call(`DELETE ${key}`, async (signal) => {
      this.#stats.deletes++;
      await this.store.delete(key, signal);
    });
  }

  /** One store call with the limiter, timeout and retries; failures become EIO. */
  async #call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await withRetry(
        this.#opts.retry,
        () => this.limiter.run(() => this.#attempt(fn)),
        (err, attempt, delay) => {
          this.#stats.retries++;
          log.debug(
            `objstore: ${this.store.description}: ${what}: retry ${attempt} in ${delay} ms: ${(err as Error).message}`,
          );
        },
      );
    } catch (err) {
      this.#stats.failures++;
      const why =
        err instanceof StoreError
          ? `${err.kind}${err.status ? ` ${err.status}` : ''}: ${err.message}`
          : (err as Error).message;
      const msg = `${this.store.description}: ${what} failed: ${why}`;
      log.error(`objstore: ${msg}`);
      throw new NbdError('EIO', msg, { cause: err });
    }
  }

  async #attempt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.#stats.inFlight++;
    this.#stats.peakInFlight = Math.max(this.#stats.peakInFlight, this.#stats.inFlight);
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    try {
      const call = fn(ac.signal);
      if (this.#opts.requestTimeoutMs <= 0) return await call;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new StoreError('transient', `no answer in ${this.#opts.requestTimeoutMs} ms`);
          ac.abort(err);
          reject(err);
        }, this.#opts.requestTimeoutMs);
      });
      call.catch(() => {}); // it may reject after the timeout won
      return await Promise.race([call, timeout]);
    } finally {
      clearTimeout(timer);
      this.#stats.inFlight--;
    }
  }
}
