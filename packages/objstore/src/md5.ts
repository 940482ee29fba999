import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** MD5 of data, hex, on this thread. */
export function md5Hex(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/*
 * The hashing thread works on slots: SharedArrayBuffers made once and kept
 * for the life of the process, so no object's memory is ever shared with it
 * (a SharedArrayBuffer's memory lives as long as either thread's heap still
 * references it, and an idle thread collects garbage rarely).
 */
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const slots = new Map();
parentPort.on('message', (m) => {
  if (m.slot !== undefined && m.sab) { slots.set(m.slot, new Uint8Array(m.sab)); return; }
  const hex = createHash('md5').update(slots.get(m.slot).subarray(0, m.length)).digest('hex');
  parentPort.postMessage({ id: m.id, hex });
});
`;

/** Smaller inputs are hashed on this thread: the copy and two messages would cost more than they save. */
const MIN_OFFLOAD = 256 * 1024;
/** Larger inputs too: three slots that big for the life of the process would hold too much memory. */
const MAX_OFFLOAD = 8 * 1024 * 1024;
/** Slots per size class: one being copied into while the thread hashes the others. */
const SLOTS_PER_CLASS = 3;

interface Slot {
  id: number;
  view: Buffer;
  busy: boolean;
}

/**
 * MD5 on a helper thread, for the object stores' PUTs: hashing a 4 MiB
 * object costs the serving thread about 8 ms, and a split-disk write at
 * store speed spent over a quarter of that thread in MD5 (profiled). The
 * data is copied into a reusable slot (about 0.4 ms for 4 MiB) and hashed there.
 * Falls back to this thread when threads are unavailable or the helper fails.
 */
export class Md5Offload {
  readonly #classes = new Map<number, Slot[]>();
  readonly #waiters = new Map<number, Array<() => void>>();
  readonly #pending = new Map<number, { resolve: (hex: string) => void; data: Buffer }>();
  #worker: Worker | undefined;
  #broken = false;
  #nextId = 0;
  #nextSlot = 0;

  /** MD5 of data, hex. data must not change until the promise settles (a PUT of it must not either). */
  async hex(data: Buffer): Promise<string> {
    if (data.length < MIN_OFFLOAD || data.length > MAX_OFFLOAD) return md5Hex(data);
    const worker = this.#start();
    if (!worker) return md5Hex(data);
    const size = 2 ** Math.ceil(Math.log2(data.length));
    const slot = await this.#acquire(worker, size);
    if (!slot) return md5Hex(data);
    try {
      data.copy(slot.view);
      return await new Promise<string>((resolve) => {
        const id = this.#nextId++;
        // Referenced while a hash is pending, so a process with nothing else to wait on (a
        // command-line upload) waits for the answer rather than exit; unreferenced when idle.
        if (this.#pending.size === 0) worker.ref();
        this.#pending.set(id, { resolve, data });
        worker.postMessage({ id, slot: slot.id, length: data.length });
      });
    } finally {
      this.#release(size, slot);
    }
  }

  #start(): Worker | undefined {
    if (this.#broken) return undefined;
    if (this.#worker) return this.#worker;
    try {
      const w = new Worker(WORKER, { eval: true });
      w.unref();
      w.on('message', (m: { id: number; hex: string }) => {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (this.#pending.size === 0) w.unref();
        p?.resolve(m.hex);
      });
      w.on('error', () => this.#fail());
      w.on('exit', () => this.#fail());
      this.#worker = w;
      return w;
    } catch {
      this.#broken = true;
      return undefined;
    }
  }

  /** The helper is gone: nothing it was asked will be answered, so those hashes are done here. */
  #fail(): void {
    this.#broken = true;
    this.#worker = undefined;
    for (const p of this.#pending.values()) p.resolve(md5Hex(p.data));
    this.#pending.clear();
    for (const list of this.#waiters.values()) for (const wake of list) wake();
    this.#waiters.clear();
  }

  async #acquire(worker: Worker, size: number): Promise<Slot | undefined> {
    let slots = this.#classes.get(size);
    if (!slots) {
      slots = [];
      for (let i = 0; i < SLOTS_PER_CLASS; i++) {
        const sab = new SharedArrayBuffer(size);
        const id = this.#nextSlot++;
        worker.postMessage({ slot: id, sab });
        slots.push({ id, view: Buffer.from(sab), busy: false });
      }
      this.#classes.set(size, slots);
    }
    for (;;) {
      if (this.#broken) return undefined;
      const free = slots.find((s) => !s.busy);
      if (free) {
        free.busy = true;
        return free;
      }
      await new Promise<void>((resolve) => {
        let list = this.#waiters.get(size);
        if (!list) {
          list = [];
          this.#waiters.set(size, list);
        }
        list.push(resolve);
      });
    }
  }

  #release(size: number, slot: Slot): void {
    slot.busy = false;
    this.#waiters.get(size)?.shift()?.();
  }
}

/** The process's one MD5 helper (one thread: this machine class has two cores, and one serves requests). */
export const md5Offload = new Md5Offload();
