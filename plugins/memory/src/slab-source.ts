import { Worker } from 'node:worker_threads';

/** Where the page allocator gets its zero-filled slabs. */
export interface SlabSource {
  /** A zero-filled buffer of `size` bytes that nothing else references. */
  take(size: number): Buffer;
  /** Drop the reserve and stop any helper thread. */
  close(): void;
}

/** Slabs allocated on the spot: their memory is faulted in by the first write to each page. */
export const freshSlabs: SlabSource = {
  take: (size) => Buffer.alloc(size),
  close() {},
};

/*
 * The helper thread allocates a slab, writes one zero per 4 KiB page (which
 * makes the kernel back every page now) and transfers the ArrayBuffer to the
 * main thread: the backing store moves, the helper keeps no reference, so a
 * slab the store frees later goes back by the main thread's GC alone.
 */
const PREFAULT_WORKER = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ count, size }) => {
  for (let i = 0; i < count; i++) {
    const ab = new ArrayBuffer(size);
    const bytes = new Uint8Array(ab);
    for (let o = 0; o < size; o += 4096) bytes[o] = 0;
    parentPort.postMessage(ab, [ab]);
  }
});
`;

/**
 * Slabs whose pages a helper thread has already faulted in. On a fresh RAM
 * disk the first write to each 4 KiB of memory costs a page fault, and on a
 * VM those dominate a sequential write (measured here: copying 1 GiB into
 * fresh slabs took 0.7-1.9 s, into faulted-in ones 0.09 s). Doing the faults
 * on another core ahead of need takes them off the thread that serves
 * requests. The reserve refills only as slabs are taken, so an idle server
 * holds at most `reserveBytes` beyond its data; when the reserve is empty a
 * slab is allocated on the spot, as without the helper.
 */
export class PrefaultedSlabs implements SlabSource {
  readonly #reserve: Buffer[] = [];
  readonly #reserveBytes: number;
  #worker: Worker | undefined;
  #requested = 0;
  #size = 0;
  #closed = false;

  constructor(reserveBytes: number) {
    this.#reserveBytes = reserveBytes;
  }

  /** Slabs faulted in and waiting to be taken. */
  get reserved(): number {
    return this.#reserve.length;
  }

  take(size: number): Buffer {
    if (this.#closed) return Buffer.alloc(size);
    if (size !== this.#size) { // the allocator uses one slab size; a change resets the reserve
      this.#reserve.length = 0;
      this.#size = size;
    }
    const slab = this.#reserve.pop();
    this.#refill();
    return slab ?? Buffer.alloc(size);
  }

  #refill(): void {
    const target = Math.max(1, Math.floor(this.#reserveBytes / this.#size));
    const count = target - this.#reserve.length - this.#requested;
    if (count <= 0) return;
    const worker = this.#worker ??= this.#start();
    if (worker === undefined) return;
    this.#requested += count;
    worker.postMessage({ count, size: this.#size });
  }

  #start(): Worker | undefined {
    let worker: Worker;
    try {
      worker = new Worker(PREFAULT_WORKER, { eval: true });
    } catch {
      this.#closed = true; // no threads here: allocate on the spot
      return undefined;
    }
    worker.unref(); // never what keeps the process alive
    worker.on('message', (ab: ArrayBuffer) => {
      this.#requested = Math.max(0, this.#requested - 1);
      if (!this.#closed && ab.byteLength === this.#size) this.#reserve.push(Buffer.from(ab));
    });
    worker.on('error', () => { this.#closed = true; this.#reserve.length = 0; });
    return worker;
  }

  close(): void {
    this.#closed = true;
    this.#reserve.length = 0;
    void this.#worker?.terminate();
    this.#worker = undefined;
  }
}
