import { createHash } from 'node:crypto';
import { StoreError, type ObjectInfo, type ObjectStore, type PutOptions, type StoreErrorKind } from '../store.ts';

/**
 * An in-memory ObjectStore for unit tests, with fault injection and call
 * accounting. Import from '@nbdts/objstore/testing'.
 *
 *   const store = new MemoryStore();
 *   store.fail({ op: 'put', times: 2 });            // next 2 PUTs: transient 503
 *   store.fail({ op: 'get', kind: 'fatal', times: Infinity, key: /part\/00000003/ });
 *   store.shortGets(1); store.corruptEtags(1); store.delayMs = 5;
 *   store.calls.put; store.maxInFlight.put; store.log
 */

export type Op = 'get' | 'put' | 'delete' | 'head' | 'list';

export interface StoredObject {
  data: Buffer;
  etag: string;
  metadata: Record<string, string>;
  contentType?: string;
}

export interface Fault {
  /** Which calls (default every kind). */
  op?: Op | Op[];
  /** Only keys equal to this string or matching this pattern. */
  key?: string | RegExp;
  /** Error kind thrown (default 'transient'). */
  kind?: StoreErrorKind;
  status?: number;
  /** How many matching calls fail (default 1; Infinity until clearFaults). */
  times?: number;
  /** The call takes effect and only its answer is an error (a 503 after the write landed). */
  afterOp?: boolean;
}

export interface LoggedCall {
  op: Op;
  key: string;
  range?: { offset: number; length: number };
}

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

export class MemoryStore implements ObjectStore {
  readonly description: string;
  readonly objects = new Map<string, StoredObject>();
  readonly containerMeta: Record<string, string> = {};
  /** Calls made, by kind (including failed ones). */
  readonly calls: Record<Op, number> = { get: 0, put: 0, delete: 0, head: 0, list: 0 };
  /** Calls in flight now and the most ever at once, by kind and in total ('all'). */
  readonly inFlight: Record<Op | 'all', number> = { get: 0, put: 0, delete: 0, head: 0, list: 0, all: 0 };
  readonly maxInFlight: Record<Op | 'all', number> = { get: 0, put: 0, delete: 0, head: 0, list: 0, all: 0 };
  /** Every call in order. */
  readonly log: LoggedCall[] = [];
  /** Delay every call by this many ms (or a function of the call). */
  delayMs: number | ((op: Op, key: string) => number) = 0;
  #faults: Array<Required<Pick<Fault, 'kind' | 'times'>> & Fault> = [];
  #short = 0;
  #badEtags = 0;

  constructor(description = 'memory store') {
    this.description = description;
  }

  /** Make matching calls fail. Faults are checked in the order added. */
  fail(fault: Fault = {}): this {
    this.#faults.push({ ...fault, kind: fault.kind ?? 'transient', times: fault.times ?? 1 });
    return this;
  }

  /** Remove every fault, short body and bad ETag still pending. */
  clearFaults(): this {
    this.#faults = [];
    this.#short = 0;
    this.#badEtags = 0;
    return this;
  }

  /** The next n GETs that find an object return one byte less than they should. */
  shortGets(n = 1): this {
    this.#short += n;
    return this;
  }

  /** The next n PUTs store the data but return a wrong ETag. */
  corruptEtags(n = 1): this {
    this.#badEtags += n;
    return this;
  }

  resetCounters(): void {
    for (const k of Object.keys(this.calls) as Op[]) this.calls[k] = 0;
    for (const k of Object.keys(this.maxInFlight) as Array<Op | 'all'>) this.maxInFlight[k] = this.inFlight[k];
    this.log.length = 0;
  }

  /** An object's bytes (a copy), or undefined. */
  data(key: string): Buffer | undefined {
    const o = this.objects.get(key);
    return o ? Buffer.from(o.data) : undefined;
  }

  /** Store an object directly, bypassing counters and faults (test setup). */
  set(key: string, data: Buffer, metadata: Record<string, string> = {}): void {
    this.objects.set(key, { data: Buffer.from(data), etag: md5(data), metadata });
  }

  async get(key: string, range?: { offset: number; length: number }, signal?: AbortSignal): Promise<Buffer | null> {
    return this.#run(
      'get',
      key,
      signal,
      () => {
        const o = this.objects.get(key);
        if (!o) return null;
        let body = range ? o.data.subarray(range.offset, range.offset + range.length) : o.data;
        if (this.#short > 0 && body.length > 0) {
          this.#short--;
          body = body.subarray(0, body.length - 1);
        }
        return Buffer.from(body);
      },
      range,
    );
  }

  async put(key: string, data: Buffer, opts: PutOptions, signal?: AbortSignal): Promise<string> {
    return this.#run('put', key, signal, () => {
      // Read the buffer only now, after the delay, as a streaming upload would:
      // a caller that changes it during the PUT sends a body that fails the MD5 check.
      const copy = Buffer.from(data);
      const etag = md5(copy);
      if (opts.md5 !== etag)
        throw new StoreError('fatal', `BadDigest: Content-MD5 ${opts.md5} does not match ${etag}`, 400);
      if (opts.ifNoneMatch && this.objects.has(key)) throw new StoreError('precondition', 'object exists', 412);
      this.objects.set(key, { data: copy, etag, metadata: { ...opts.metadata }, contentType: opts.contentType });
      if (this.#badEtags > 0) {
        this.#badEtags--;
        return '0'.repeat(32);
      }
      return `"${etag}"`;
    });
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    return this.#run('delete', key, signal, () => {
      this.objects.delete(key);
    });
  }

  async head(key: string, signal?: AbortSignal): Promise<(ObjectInfo & { metadata: Record<string, string> }) | null> {
    return this.#run('head', key, signal, () => {
      const o = this.objects.get(key);
      return o ? { key, size: o.data.length, etag: o.etag, metadata: { ...o.metadata } } : null;
    });
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const page = await this.#run('list', prefix, signal, () =>
      [...this.objects.entries()]
        .filter(([k]) => k.startsWith(prefix))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, o]): ObjectInfo => ({ key, size: o.data.length, etag: o.etag })),
    );
    yield* page;
  }

  async getContainerMeta(): Promise<Record<string, string>> {
    return { ...this.containerMeta };
  }

  async setContainerMeta(meta: Record<string, string | null>): Promise<void> {
    for (const [k, v] of Object.entries(meta)) {
      if (v === null) delete this.containerMeta[k];
      else this.containerMeta[k] = v;
    }
  }

  async #run<T>(
    op: Op,
    key: string,
    signal: AbortSignal | undefined,
    fn: () => T,
    range?: LoggedCall['range'],
  ): Promise<T> {
    this.calls[op]++;
    this.log.push(range ? { op, key, range } : { op, key });
    this.inFlight[op]++;
    this.inFlight.all++;
    this.maxInFlight[op] = Math.max(this.maxInFlight[op], this.inFlight[op]);
    this.maxInFlight.all = Math.max(this.maxInFlight.all, this.inFlight.all);
    try {
      const delay = typeof this.delayMs === 'function' ? this.delayMs(op, key) : this.delayMs;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      else await Promise.resolve();
      if (signal?.aborted) throw new StoreError('transient', 'aborted');
      const fault = this.#faults.find((f) => matches(f, op, key));
      if (fault) {
        if (--fault.times <= 0) this.#faults.splice(this.#faults.indexOf(fault), 1);
        if (fault.afterOp) await fn();
        throw new StoreError(
          fault.kind,
          `injected ${fault.kind} fault on ${op} ${key}`,
          fault.status ?? (fault.kind === 'transient' ? 503 : 500),
        );
      }
      return fn();
    } finally {
      this.inFlight[op]--;
      this.inFlight.all--;
    }
  }
}

function matches(f: Fault, op: Op, key: string): boolean {
  if (f.op !== undefined && !(Array.isArray(f.op) ? f.op.includes(op) : f.op === op)) return false;
  if (f.key === undefined) return true;
  return typeof f.key === 'string' ? f.key === key : f.key.test(key);
}
