import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { ConfigError, ExtentType, isAllZero, type Extent } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import { MappedStore, SparseStore, WINDOW, type MappedShared, type RegionOps } from '../src/index.ts';
import { arbitraries, ensureNative, opData, openMemory, PS, readAll } from './helpers.ts';

beforeAll(() => {
  const quiet = () => {};
  setPluginLogger({ debug: quiet, info: quiet, warn: quiet, error: quiet, debugEnabled: false });
});

const loaded = ensureNative();
const native = loaded as RegionOps; // only used in suites skipped without it
const MiB = 2 ** 20;

/**
 * Which pages a MappedStore keeps, by its rules, over a flat Buffer: the
 * reference its extents and page count must match exactly.
 */
class PageModel {
  readonly bytes: Buffer;
  readonly data: boolean[];

  readonly size: number;
  readonly ps: number;
  readonly shared: boolean;

  constructor(size: number, ps: number, shared: boolean) {
    this.size = size;
    this.ps = ps;
    this.shared = shared;
    this.bytes = Buffer.alloc(size);
    this.data = new Array<boolean>(Math.ceil(size / ps)).fill(false);
  }

  /** Pages touched by [offset, +count), with the part of each touched and whether it is all of the page. */
  *#pages(count: number, offset: number): Generator<{ i: number; a: number; b: number; whole: boolean }> {
    for (let i = Math.floor(offset / this.ps); count > 0 && i * this.ps < offset + count; i++) {
      const start = i * this.ps;
      const end = Math.min(start + this.ps, this.size);
      const a = Math.max(offset, start);
      const b = Math.min(offset + count, end);
      yield { i, a, b, whole: a === start && b === end };
    }
  }

  write(buf: Buffer, offset: number): void {
    for (const { i, a, b, whole } of this.#pages(buf.length, offset)) {
      const zeros = isAllZero(buf.subarray(a - offset, b - offset));
      if (!this.data[i]) this.data[i] = !zeros;
      else if (whole && zeros) this.data[i] = false;
    }
    buf.copy(this.bytes, offset);
  }

  zero(count: number, offset: number): void {
    this.bytes.fill(0, offset, offset + count);
    for (const { i, whole } of this.#pages(count, offset)) {
      const page = this.bytes.subarray(i * this.ps, (i + 1) * this.ps);
      if (whole || (this.data[i] && !this.shared && isAllZero(page))) this.data[i] = false;
    }
  }

  extents(count: number, offset: number): Extent[] {
    const out: Extent[] = [];
    for (const { i, a, b } of this.#pages(count, offset)) {
      const type = this.data[i] ? ExtentType.DATA : ExtentType.SPARSE;
      const last = out[out.length - 1];
      if (last?.type === type) last.length += b - a;
      else out.push({ offset: a, length: b - a, type });
    }
    return out;
  }
}

describe.skipIf(loaded === null)('MappedStore', () => {
  describe('against an exact model of its pages', () => {
    const SIZE = 70 * PS + 37; // over two 32-page bitmap words; the last page is partial
    const { range, op } = arbitraries(SIZE);

    it('reads, extents (also capped) and page counts match the model, shared or not', () => {
      fc.assert(
        fc.property(
          fc.array(op, { maxLength: 30 }),
          range,
          fc.boolean(),
          fc.integer({ min: 1, max: 4 }),
          (ops, probe, shared, max) => {
            const store = MappedStore.create(SIZE, PS);
            try {
              if (shared) store.share();
              const model = new PageModel(SIZE, PS, shared);
              for (const o of ops) {
                if (o.kind === 'write') {
                  const buf = opData(o);
                  store.write(buf, o.offset);
                  model.write(buf, o.offset);
                } else {
                  store.zero(o.length, o.offset);
                  model.zero(o.length, o.offset);
                }
              }
              const got = Buffer.concat(store.read(probe.length, probe.offset));
              // Buffer.equals: toEqual on buffers this big takes ~100 ms each
              expect(got.equals(model.bytes.subarray(probe.offset, probe.offset + probe.length))).toBe(true);
              const extents = model.extents(probe.length, probe.offset);
              expect(store.extents(probe.length, probe.offset)).toEqual(extents);
              expect(store.extents(probe.length, probe.offset, max)).toEqual(extents.slice(0, max));
              expect(store.stats().pages).toBe(model.data.filter(Boolean).length);
            } finally {
              store.dispose();
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  });

  it('merges neighbouring pages of a kind into one view each', () => {
    const store = MappedStore.create(16 * PS, PS);
    store.write(Buffer.alloc(2 * PS, 1), PS);
    store.write(Buffer.alloc(10, 2), 6 * PS);
    const parts = store.read(8 * PS, 0);
    expect(parts.map((b) => b.length)).toEqual([PS, 2 * PS, 3 * PS, PS, PS]);
    expect(parts[1]!.every((b) => b === 1)).toBe(true);
    store.dispose();
  });

  it('splits views at the 1 GiB windows and frees pages across them', () => {
    const store = MappedStore.create(WINDOW + 8 * PS, PS);
    const at = WINDOW - 2 * PS + 100;
    const buf = Buffer.alloc(4 * PS);
    for (let i = 0; i < buf.length; i++) buf[i] = (i % 251) + 1;
    store.write(buf, at);
    const parts = store.read(buf.length, at);
    expect(parts.map((b) => b.length)).toEqual([WINDOW - at, at + buf.length - WINDOW]);
    expect(Buffer.concat(parts)).toEqual(buf);
    expect(store.stats().pages).toBe(5);
    expect(store.extents(WINDOW + 8 * PS, 0)).toEqual([
      { offset: 0, length: WINDOW - 2 * PS, type: ExtentType.SPARSE },
      { offset: WINDOW - 2 * PS, length: 5 * PS, type: ExtentType.DATA },
      { offset: WINDOW + 3 * PS, length: 5 * PS, type: ExtentType.SPARSE },
    ]);
    store.zero(2 * PS, WINDOW - PS);
    expect(store.stats().pages).toBe(3);
    expect(isAllZero(Buffer.concat(store.read(2 * PS, WINDOW - PS)))).toBe(true);
    expect(Buffer.concat(store.read(PS, WINDOW + PS))).toEqual(buf.subarray(WINDOW + PS - at, WINDOW + 2 * PS - at));
    store.dispose();
  });

  it('maps 1 TiB and reports its extents a bitmap word at a time', () => {
    const ps = 65536;
    const store = MappedStore.create(2 ** 40, ps);
    store.write(Buffer.alloc(64 * ps, 3), 32_000 * ps); // two whole 32-page words of data
    store.write(Buffer.alloc(100, 4), 5_000_000 * ps + 7);
    expect(store.extents(2 ** 40, 0)).toEqual([
      { offset: 0, length: 32_000 * ps, type: ExtentType.SPARSE },
      { offset: 32_000 * ps, length: 64 * ps, type: ExtentType.DATA },
      { offset: 32_064 * ps, length: (5_000_000 - 32_064) * ps, type: ExtentType.SPARSE },
      { offset: 5_000_000 * ps, length: ps, type: ExtentType.DATA },
      { offset: 5_000_001 * ps, length: 2 ** 40 - 5_000_001 * ps, type: ExtentType.SPARSE },
    ]);
    // From the middle of a data word.
    expect(store.extents(100 * ps, 32_050 * ps + 1, 1)).toEqual([
      { offset: 32_050 * ps + 1, length: 14 * ps - 1, type: ExtentType.DATA },
    ]);
    expect(store.stats()).toMatchObject({ pages: 65, allocatedBytes: 65 * ps });
    store.clear();
    expect(store.stats().pages).toBe(0);
    store.dispose();
  });

  it('shared, a partial zero leaves an all-zero page allocated (another thread may be writing it)', () => {
    const store = MappedStore.create(4 * PS, PS);
    store.write(Buffer.alloc(100, 1), PS);
    store.share();
    store.zero(100, PS);
    expect(store.stats().pages).toBe(1);
    expect(isAllZero(Buffer.concat(store.read(PS, PS)))).toBe(true);
    store.zero(PS, PS); // a whole page is still freed
    expect(store.stats().pages).toBe(0);
    store.dispose();
  });

  it('checks its geometry', () => {
    expect(() => MappedStore.create(MiB, native.pageSize() / 2)).toThrow(/page size/);
    expect(() => MappedStore.create(MiB, 3 * native.pageSize())).toThrow(/page size/);
    expect(() => MappedStore.create(-1, PS)).toThrow(RangeError);
    expect(() => MappedStore.create(2 ** 50, native.pageSize())).toThrow(/at most/);
    expect(() => MappedStore.create(2 ** 50, MiB)).toThrow(expect.objectContaining({ code: 'ENOMEM' })); // 1 PiB
  });

  describe('memory lifetime', () => {
    it('views read before clear and unload stay readable: the mapping lives while they do', async () => {
      const { plugin, h, store } = await openMemory('64M', 65536, 'mapped');
      await plugin.pwrite!(h, Buffer.alloc(MiB, 0xaa), 0, 0);
      const held = plugin.read!(h, MiB, 0, 0) as Buffer[];
      expect(held).toHaveLength(1);
      const shared = (store as MappedStore).share();
      expect(native.refs(shared.id)).toBe(2); // the creator and this thread's window
      await plugin.unload!(); // clear, then let go of the mapping
      expect(native.refs(shared.id)).toBe(1); // the window behind `held`
      expect(() => MappedStore.attach(shared)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      expect(() => store.read(1, 0)).toThrow(/disposed/);
      for (const b of held) expect(isAllZero(b)).toBe(true); // cleared, still mapped (unmapped would crash)
      expect(store.stats().pages).toBe(0);
    });

    it('the mapping goes once the last view is collected', async () => {
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      const id = ((): number => {
        const store = MappedStore.create(MiB, PS);
        store.write(Buffer.alloc(PS, 1), 0);
        store.read(PS, 0);
        const { id } = store.share();
        store.dispose();
        return id;
      })();
      expect(native.refs(id)).toBe(1);
      await expect
        .poll(
          () => {
            gc();
            return native.refs(id);
          },
          { timeout: 10_000, interval: 50 },
        )
        .toBe(0);
    });

    it("an attached store neither clears nor releases the creator's mapping", () => {
      const store = MappedStore.create(MiB, PS);
      store.write(Buffer.alloc(PS, 5), 0);
      const shared = store.share();
      const copy = MappedStore.attach(structuredClone(shared));
      expect(copy.owner).toBe(false);
      expect(native.refs(shared.id)).toBe(3); // creator, its window, the attach handle
      expect(() => copy.clear()).toThrow(/only the store that created/);
      copy.dispose();
      expect(Buffer.concat(store.read(PS, 0)).every((b) => b === 5)).toBe(true);
      expect(() => MappedStore.attach(shared).dispose()).not.toThrow(); // not released
      store.dispose();
      expect(() => MappedStore.attach(shared)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    });

    it('RSS grows by what is written and drops after zero or trim', async () => {
      const rss = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
      const { plugin, h } = await openMemory('1G', 65536, 'mapped');
      const chunk = Buffer.alloc(256 * 1024, 0x5a);
      const fill = (at: number): void => {
        for (let o = 0; o < 64 * MiB; o += chunk.length) void plugin.pwrite!(h, chunk, at + o, 0);
      };
      const before = rss();
      fill(256 * MiB);
      expect(rss() - before).toBeGreaterThanOrEqual(48 * MiB);
      await plugin.zero!(h, 64 * MiB, 256 * MiB, 0);
      expect(rss() - before).toBeLessThan(16 * MiB);
      fill(512 * MiB);
      expect(rss() - before).toBeGreaterThanOrEqual(48 * MiB);
      await plugin.trim!(h, 64 * MiB + 100, 512 * MiB - 50, 0); // unaligned: partial pages at both ends
      expect(rss() - before).toBeLessThan(16 * MiB);
      await plugin.unload!();
    });
  });

  describe('plugin threads hook', () => {
    it('the JS store declines to share; the mapped store shares what attach needs', async () => {
      const js = await openMemory('1M', PS, 'js');
      expect(js.plugin.threads!.share()).toBeUndefined();
      const { plugin, h } = await openMemory('1M', PS, 'mapped');
      await plugin.pwrite!(h, Buffer.from('from the first copy'), 1000, 0);
      const shared = structuredClone(plugin.threads!.share()) as MappedShared;
      expect(shared).toMatchObject({ size: MiB, pageSize: PS, id: expect.any(Number) });
      expect(shared.bitmap).toBeInstanceOf(SharedArrayBuffer);

      const copy = (await openMemory('1M', PS, 'js')).plugin; // a fresh instance, as a worker would load
      await copy.threads!.attach(shared);
      const h2 = await copy.open('', false);
      expect(readAll(copy, h2, 19, 1000).toString()).toBe('from the first copy');
      await copy.pwrite!(h2, Buffer.from('and back'), 5000, 0);
      expect(readAll(plugin, h, 8, 5000).toString()).toBe('and back');
      expect(plugin.store!.stats().pages).toBe(2);
      await copy.unload!(); // an attached copy leaves the data alone
      expect(readAll(plugin, h, 8, 5000).toString()).toBe('and back');
      await plugin.unload!();
      await js.plugin.unload!();
    });

    it('falls back to the JS store when the mapping cannot be made, unless mapped is required', async () => {
      const huge = await openMemory('1P', 65536, 'auto'); // more than the address space
      expect(huge.store).toBeInstanceOf(SparseStore);
      await huge.plugin.unload!();
      const small = await openMemory('1M', 512, 'auto'); // pages smaller than the OS page
      expect(small.store).toBeInstanceOf(SparseStore);
      const auto = await openMemory('1M', 65536, 'auto');
      expect(auto.store).toBeInstanceOf(MappedStore);
      await auto.plugin.unload!();
      await expect(openMemory('1P', 65536, 'mapped')).rejects.toThrow(ConfigError);
      await expect(openMemory('1M', 512, 'mapped')).rejects.toThrow(/not a multiple of the OS page size/);
    });
  });

  describe('worker threads', () => {
    /** A worker attached to `shared` (fixtures/store-worker.mjs), called one message at a time. */
    async function startWorker(shared: unknown) {
      const worker = new Worker(new URL('./fixtures/store-worker.mjs', import.meta.url), { workerData: { shared } });
      const replies: ((m: { result?: unknown; error?: string }) => void)[] = [];
      await new Promise<void>((resolve, reject) => {
        worker.once('error', reject);
        worker.once('message', () => resolve());
      });
      worker.on('message', (m: { result?: unknown; error?: string }) => replies.shift()?.(m));
      const call = async (op: string, ...args: unknown[]): Promise<unknown> => {
        const reply = await new Promise<{ result?: unknown; error?: string }>((resolve) => {
          replies.push(resolve);
          worker.postMessage({ op, args });
        });
        if (reply.error !== undefined) throw new Error(reply.error);
        return reply.result;
      };
      return { worker, call };
    }
    const bytes = (v: unknown): Buffer => Buffer.from(v as Uint8Array);

    it("a store attached in a worker sees the main thread's writes, and the other way round", async () => {
      const { plugin, h } = await openMemory('16M', 65536, 'mapped');
      const a = Buffer.alloc(200_000);
      for (let i = 0; i < a.length; i++) a[i] = (i % 253) + 1;
      await plugin.pwrite!(h, a, 1000, 0);
      const shared = plugin.threads!.share() as MappedShared;
      const { worker, call } = await startWorker(shared);
      try {
        expect(bytes(await call('read', a.length, 1000))).toEqual(a);
        expect(native.refs(shared.id)).toBe(4); // creator, main window; the worker's handle and window
        expect(await call('pages')).toBe(4);

        await call('write', Buffer.alloc(300_000, 0x77), 5 * MiB);
        expect(readAll(plugin, h, 300_000, 5 * MiB).every((b) => b === 0x77)).toBe(true);
        expect(plugin.store!.stats().pages).toBe(4 + 5);
        expect(await plugin.extents!(h, MiB, 5 * MiB, 0)).toEqual([
          { offset: 5 * MiB, length: 5 * 65536, type: ExtentType.DATA },
          { offset: 5 * MiB + 5 * 65536, length: MiB - 5 * 65536, type: ExtentType.SPARSE },
        ]);

        await call('zero', 4 * 65536, 0); // the main thread's data, from the worker
        expect(isAllZero(readAll(plugin, h, a.length + 1000, 0))).toBe(true);
        expect(await call('extents', 65536, 0)).toEqual([{ offset: 0, length: 65536, type: ExtentType.SPARSE }]);

        await plugin.pwrite!(h, Buffer.from('main again'), 8 * MiB, 0);
        expect(bytes(await call('read', 10, 8 * MiB)).toString()).toBe('main again');
      } finally {
        await worker.terminate();
      }
      // The worker's window and handle go with it; the mapping stays for the main thread.
      await expect.poll(() => native.refs(shared.id), { timeout: 5000 }).toBe(2);
      expect(readAll(plugin, h, 300_000, 5 * MiB).every((b) => b === 0x77)).toBe(true);
      await plugin.unload!();
    });

    it('threads writing neighbouring pages at the same moment lose no page and no byte', async () => {
      // Each round both threads set bits of the same two bitmap words at once.
      const pages = 64;
      const rounds = 300;
      const { plugin, h, store } = await openMemory('1M', PS, 'mapped');
      const { worker, call } = await startWorker(plugin.threads!.share());
      try {
        const sync = new SharedArrayBuffer(8);
        const flags = new Int32Array(sync);
        const odd = Array.from({ length: pages / 2 }, (_, i) => (2 * i + 1) * PS);
        const done = call('race', sync, rounds, odd, PS, 0x22);
        const page = Buffer.alloc(PS, 0x11);
        const bad: string[] = [];
        for (let r = 1; r <= rounds; r++) {
          Atomics.store(flags, 0, r);
          for (let i = 0; i < pages; i += 2) void plugin.pwrite!(h, page, i * PS, 0);
          while (Atomics.load(flags, 1) < r) Atomics.wait(flags, 1, r - 1, 10);
          const extents = store.extents(pages * PS, 0);
          const all = readAll(plugin, h, pages * PS, 0);
          const wrong = Array.from({ length: pages }, (_, i) => i).filter(
            (i) => all[i * PS + PS - 1] !== (i % 2 === 0 ? 0x11 : 0x22),
          );
          if (store.stats().pages !== pages || extents.length !== 1 || wrong.length > 0) {
            bad.push(
              `round ${r}: ${store.stats().pages} pages, ${extents.length} extents, pages ${wrong.join(',')} wrong`,
            );
          }
          await plugin.zero!(h, pages * PS, 0, 0);
        }
        await done;
        expect(bad).toEqual([]);
        expect(store.stats().pages).toBe(0);
      } finally {
        await worker.terminate();
      }
      await plugin.unload!();
    });
  });
});
