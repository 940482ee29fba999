/**
 * Pull-style reads for the handshake phase (not performance-critical):
 * read exactly n bytes, or discard n bytes without keeping them. Stops the
 * socket when too much is buffered so a client cannot make us hold more
 * than about HIGH_WATER bytes.
 */
const HIGH_WATER = 1 << 20;

export class ConnectionClosed extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'ConnectionClosed';
  }
}

export class ByteReader {
  #chunks: Buffer[] = [];
  #total = 0;
  #want = 0;
  #waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void; exact: boolean } | undefined;
  #failure: Error | undefined;

  readonly #flow: (on: boolean) => void;

  constructor(flow: (on: boolean) => void) {
    this.#flow = flow;
  }

  get buffered(): number {
    return this.#total;
  }

  /** The stream ended or failed (or the connection was stopped): reads reject. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  push(chunk: Buffer): void {
    if (this.#failure) return;
    this.#chunks.push(chunk);
    this.#total += chunk.length;
    this.#serve();
    if (this.#total >= HIGH_WATER && !this.#waiter) this.#flow(false);
  }

  /** The stream ended or failed: pending and later reads reject. */
  fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    const w = this.#waiter;
    this.#waiter = undefined;
    if (w) w.reject(err);
  }

  /** Exactly n bytes. */
  read(n: number): Promise<Buffer> {
    if (this.#total >= n) return Promise.resolve(this.#take(n));
    return this.#wait(n, true);
  }

  /** Discard n bytes, holding at most one chunk at a time. */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.#total === 0) await this.#wait(1, false);
      const k = Math.min(n, this.#total);
      this.#take(k);
      n -= k;
    }
  }

  /** Everything buffered, for the next phase to parse. */
  drain(): Buffer[] {
    const out = this.#chunks;
    this.#chunks = [];
    this.#total = 0;
    return out;
  }

  #wait(n: number, exact: boolean): Promise<Buffer> {
    if (this.#failure) return Promise.reject(this.#failure);
    this.#want = n;
    this.#flow(true);
    return new Promise<Buffer>((resolve, reject) => {
      this.#waiter = { resolve, reject, exact };
    });
  }

  #serve(): void {
    const w = this.#waiter;
    if (!w || this.#total < this.#want) return;
    this.#waiter = undefined;
    w.resolve(w.exact ? this.#take(this.#want) : Buffer.alloc(0));
  }

  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.#chunks[0]!;
        const k = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, k);
        filled += k;
        if (k === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
    }
    this.#total -= n;
    return out;
  }
}
