import { Worker } from 'node:worker_threads';

/** Smaller buffers are allocated on the spot: the message would cost more than the faults. */
export const MIN_PREFAULT = 256 * 1024;

/** Where big zero-filled buffers come from (a page allocator's slabs, an object cache's chunks). */
export interface SlabSource {
  /** A zero-filled buffer of `size` bytes that nothing else references. */
  take(size: number): Buffer;
  /** Drop the reserve and stop any helper thread. */
  close(): void;
}

/** Buffers allocated on the spot: their memory is faulted in by the first write to each page. */
export const freshSlabs: SlabSource = {
  take: (size) => Buffer.alloc(size),
  close() {},
};

/*
 * The helper thread allocates a buffer, writes one zero per 4 KiB page (which
 * makes the kernel back every page now) and transfers the ArrayBuffer to the
 * main thread: the backing store moves, the helper keeps no reference, so a
 * buffer dropped later goes back by the main thread's GC alone.
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

/** Sizes with a reserve at once; the least recently taken loses its reserve first. */
const MAX_SIZES = 4;

interface Reserve {
  ready: Buffer[];
  requested: number;
  takes: number;
}

/**
 * Zero-filled buffers whose pages a helper thread has already faulted in.
 * The first write to each 4 KiB of fresh memory costs a page fault, and on a
 * VM those dominate filling big buffers (measured here: copying 1 GiB into
 * fresh 1 MiB buffers took 0.7-1.9 s, into faulted-in ones 0.09 s). Doing the
 * faults on another core ahead of need takes them off the thread that serves
 * requests. Each size asked for more than once has its own reserve of at most
 * `reserveBytes` (at most MAX_SIZES sizes at a time), refilled only as buffers
 * of that size are taken, so an idle server holds little beyond its data; with
 * the reserve empty a buffer is allocated on the spot.
 * Only sizes of at least MIN_PREFAULT are worth a message to the helper.
 */
export class PrefaultedBuffers implements SlabSource {
  readonly #reserves = new Map<number, Reserve>();
  readonly #reserveBytes: number;
  #worker: Worker | undefined;
  #closed = false;

  constructor(reserveBytes: number) {
    this.#reserveBytes = reserveBytes;
  }

  /** Buffers of `size` faulted in and waiting to be taken. */
  reserved(size: number): number {
    return this.#reserves.get(size)?.ready.length ?? 0;
  }

  take(size: number): Buffer {
    if (this.#closed || size < MIN_PREFAULT || size > this.#reserveBytes) return Buffer.alloc(size);
    let r = this.#reserves.get(size);
    if (r) {
      this.#reserves.delete(size); // re-inserted below: the Map's order is most recently taken last
    } else {
      r = { ready: [], requested: 0, takes: 0 };
    }
    this.#reserves.set(size, r);
    r.takes++;
    const buf = r.ready.pop();
    // A size seen once (the short last object of a disk, an odd range) gets no reserve:
    // only sizes asked for again are worth memory held ahead.
    if (r.takes >= 2) this.#refill(size, r);
    if (this.#reserves.size > MAX_SIZES) this.#reserves.delete(this.#reserves.keys().next().value!);
    return buf ?? Buffer.alloc(size);
  }

  #refill(size: number, r: Reserve): void {
    const count = Math.floor(this.#reserveBytes / size) - r.ready.length - r.requested;
    if (count <= 0) return;
    const worker = (this.#worker ??= this.#start());
    if (worker === undefined) return;
    r.requested += count;
    worker.postMessage({ count, size });
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
      const r = this.#reserves.get(ab.byteLength);
      if (!r) return;
      r.requested = Math.max(0, r.requested - 1);
      if (!this.#closed) r.ready.push(Buffer.from(ab));
    });
    worker.on('error', () => this.close());
    return worker;
  }

  close(): void {
    this.#closed = true;
    this.#reserves.clear();
    void this.#worker?.terminate();
    this.#worker = undefined;
  }
}
