import { describe, it, expect, beforeEach, beforeAll } from 'vitest';
import fc from 'fast-check';
import { ExtentType, Flag, NbdError } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import { isAllZero } from '@nbdts/plugin-api';
import { PrefaultedBuffers } from '@nbdts/plugin-api/engine';
import memoryPlugin, { MappedStore, PageAllocator, SparseStore, type PageStore } from '../src/index.ts';
import { arbitraries, ensureNative, opData, openMemory, PS, readAll } from './helpers.ts';

beforeAll(() => {
  const quiet = () => {};
  setPluginLogger({ debug: quiet, info: quiet, warn: quiet, error: quiet, debugEnabled: false });
});

const native = ensureNative();
type Kind = 'js' | 'mapped';
const KINDS: Kind[] = native === null ? ['js'] : ['js', 'mapped'];

/** The SparseStore of a plugin opened with store 'js'. */
function sparse(store: PageStore): SparseStore {
  if (!(store instanceof SparseStore)) throw new Error('expected the JS store');
  return store;
}

it('default export is a plugin named memory with size as magic key', () => {
  expect(memoryPlugin.name).toBe('memory');
  expect(memoryPlugin.magicConfigKey).toBe('size');
  expect(memoryPlugin.config!.safeParse({}).success).toBe(false);
  expect(memoryPlugin.config!.safeParse({ size: 'lots' }).success).toBe(false);
  expect(memoryPlugin.config!.parse({ size: '1G' })).toEqual({ size: 2 ** 30 });
});

describe.each(KINDS)('memory plugin (%s store)', (kind) => {
  const open = (size: string, pageSize = PS) => openMemory(size, pageSize, kind);

  it('uses the store asked for', async () => {
    const { store } = await open('1M');
    expect(store).toBeInstanceOf(kind === 'js' ? SparseStore : MappedStore);
  });

  it('advertises everything a RAM disk can do', async () => {
    const { plugin, h } = await open('1M');
    expect(await plugin.getSize(h)).toBe(2 ** 20);
    expect(plugin.canFlush!(h)).toBe(true);
    expect(plugin.canFua!(h)).toBe('native');
    expect(plugin.canMultiConn!(h)).toBe(true);
    expect(plugin.canZero!(h)).toBe('native');
    expect(plugin.canFastZero!(h)).toBe(true);
    expect(plugin.canCache!(h)).toBe('native');
  });

  it('unwritten space reads as zeros and allocates nothing', async () => {
    const { plugin, h, store } = await open('1G', 65536);
    const data = readAll(plugin, h, 3 * 2 ** 20, 2 ** 29 - 12345);
    expect(isAllZero(data)).toBe(true);
    expect(store.stats().pages).toBe(0);
  });

  it('reads back writes that cross page boundaries', async () => {
    const { plugin, h, store } = await open('64K');
    const buf = Buffer.alloc(3 * PS + 100);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 7 + 1) & 0xff || 1;
    await plugin.pwrite!(h, buf, PS - 50, 0);
    expect(store.stats().pages).toBe(5); // touches pages 0..4
    expect(readAll(plugin, h, buf.length, PS - 50)).toEqual(buf);
    // The bytes either side are still zero.
    const around = readAll(plugin, h, 5 * PS, 0);
    expect(isAllZero(around.subarray(0, PS - 50))).toBe(true);
    expect(isAllZero(around.subarray(PS - 50 + buf.length))).toBe(true);
  });

  it('read returns page subarrays without copying', async () => {
    const { plugin, h } = await open('64K');
    await plugin.pwrite!(h, Buffer.alloc(PS, 0xaa), 0, 0);
    const [first] = plugin.read!(h, 10, 0, 0) as Buffer[];
    await plugin.pwrite!(h, Buffer.from([0xbb]), 0, 0);
    // Same memory: the later write shows through (see SparseStore's comment on why that is fine).
    expect(first![0]).toBe(0xbb);
  });

  it('an all-zero write to an absent page allocates nothing; a whole-page zero write frees', async () => {
    const { plugin, h, store } = await open('64K');
    await plugin.pwrite!(h, Buffer.alloc(3 * PS), 100, 0);
    expect(store.stats().pages).toBe(0);
    await plugin.pwrite!(h, Buffer.alloc(PS, 1), PS, 0);
    expect(store.stats().pages).toBe(1);
    await plugin.pwrite!(h, Buffer.alloc(PS), PS, 0);
    expect(store.stats().pages).toBe(0);
  });

  it('trim and zero free whole pages and zero partial ones', async () => {
    const { plugin, h, store } = await open('64K');
    await plugin.pwrite!(h, Buffer.alloc(4 * PS, 0x55), 0, 0);
    expect(store.stats()).toMatchObject({ pages: 4, allocatedBytes: 4 * PS });

    await plugin.trim!(h, 2 * PS, PS / 2, 0); // half of 0, all of 1, half of 2
    expect(store.stats().pages).toBe(3);
    const after = readAll(plugin, h, 4 * PS, 0);
    expect(after.subarray(0, PS / 2).every((b) => b === 0x55)).toBe(true);
    expect(isAllZero(after.subarray(PS / 2, PS / 2 + 2 * PS))).toBe(true);
    expect(after.subarray(PS / 2 + 2 * PS).every((b) => b === 0x55)).toBe(true);

    await plugin.zero!(h, PS / 2, 0, Flag.MAY_TRIM); // page 0 now all zero: freed
    await plugin.zero!(h, PS / 2, 2 * PS + PS / 2, 0); // page 2 likewise
    expect(store.stats().pages).toBe(1);
    await plugin.zero!(h, 100, 3 * PS + 10, Flag.FAST_ZERO); // partial: page kept
    expect(store.stats().pages).toBe(1);
    expect(readAll(plugin, h, 200, 3 * PS)).toEqual(
      Buffer.concat([Buffer.alloc(10, 0x55), Buffer.alloc(100), Buffer.alloc(90, 0x55)]),
    );
  });

  it('extents report holes for absent pages and data for present ones', async () => {
    const { plugin, h } = await open('64K');
    await plugin.pwrite!(h, Buffer.alloc(10, 1), PS + 5, 0);
    await plugin.pwrite!(h, Buffer.alloc(2 * PS, 1), 3 * PS, 0);
    expect(await plugin.extents!(h, 64 * 1024, 0, 0)).toEqual([
      { offset: 0, length: PS, type: ExtentType.HOLE | ExtentType.ZERO },
      { offset: PS, length: PS, type: ExtentType.DATA },
      { offset: 2 * PS, length: PS, type: ExtentType.SPARSE },
      { offset: 3 * PS, length: 2 * PS, type: ExtentType.DATA },
      { offset: 5 * PS, length: 64 * 1024 - 5 * PS, type: ExtentType.SPARSE },
    ]);
    // Starting mid-page, and REQ_ONE stops after the first extent.
    expect(await plugin.extents!(h, 3 * PS, 3 * PS + 7, Flag.REQ_ONE)).toEqual([
      { offset: 3 * PS + 7, length: 2 * PS - 7, type: ExtentType.DATA },
    ]);
  });

  it('every handle shares one store (multi-conn)', async () => {
    const { plugin, h } = await open('64K');
    const h2 = await plugin.open('', false);
    await plugin.pwrite!(h, Buffer.from('hello'), 1000, Flag.FUA);
    await plugin.flush!(h, 0);
    expect(readAll(plugin, h2, 5, 1000).toString()).toBe('hello');
  });

  it('refuses requests past the end even if the engine let one through', async () => {
    const { plugin, h, store } = await open('8K');
    expect(() => plugin.pwrite!(h, Buffer.alloc(10, 1), 8192 - 5, 0)).toThrow(NbdError);
    expect(() => plugin.read!(h, 1, 8192, 0)).toThrow(/outside the 8192-byte export/);
    expect(store.stats().pages).toBe(0);
    expect(readAll(plugin, h, 0, 8192).length).toBe(0); // zero-length at the end is fine
  });

  it('unload frees the pages', async () => {
    const { plugin, h, store } = await open('64K');
    await plugin.pwrite!(h, Buffer.alloc(PS, 9), 0, 0);
    await plugin.unload!();
    expect(store.stats().pages).toBe(0);
  });
});

describe('memory plugin (js store)', () => {
  it('a 1 GiB export with a few writes keeps memory small', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const { plugin, h, store: s } = await openMemory('1G', 65536);
    const store = sparse(s);
    for (let i = 0; i < 16; i++) await plugin.pwrite!(h, Buffer.alloc(4096, i + 1), i * 2 ** 26 + 777, 0);
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(store.stats().pages).toBe(16);
    // 16 pages = 1 MiB, carved from one 1 MiB slab, plus slack; the export is 1024 MiB.
    expect(store.stats().slabBytes).toBe(2 ** 20);
    expect(grown).toBeLessThan(4 * 2 ** 20);
    expect(readAll(plugin, h, 4096, 5 * 2 ** 26 + 777).every((b) => b === 6)).toBe(true);
  });
});

/** Every byte of `b` is `v`. */
const allAre = (b: Buffer, v: number): boolean => b.every((x) => x === v);

describe('prefaulted slabs', () => {
  const MiB = 1024 * 1024;
  it('whole-page writes on prefaulted slabs keep every byte written across many slabs', async () => {
    const source = new PrefaultedBuffers(2 * MiB);
    const store = new SparseStore(64 * MiB, 64 * 1024, MiB, source);
    try {
      const data = Buffer.alloc(48 * MiB);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i ^ 0x5a5a5a5a, i);
      for (let off = 0; off < data.length; off += 256 * 1024) {
        store.write(data.subarray(off, off + 256 * 1024), off + 4096);
        if (off % (4 * MiB) === 0) await new Promise((r) => setTimeout(r, 5)); // let the reserve refill
      }
      const back = Buffer.concat([store.read(data.length, 4096)].flat());
      expect(back.equals(data)).toBe(true);
      expect(isAllZero(Buffer.concat([store.read(4096, 0)].flat()))).toBe(true);
    } finally {
      store.clear();
    }
  });
});

describe('page memory is never reused while a reply may still hold it', () => {
  it('buffers returned by read keep their data after trim, zero and writes elsewhere', async () => {
    // 1 MiB export of 4 KiB pages: one 256-page slab; writing 256 more pages needs a second.
    const { plugin, h, store: s } = await openMemory('1M');
    const store = sparse(s);
    await plugin.pwrite!(h, Buffer.alloc(3 * PS, 0xaa), 0, 0);
    const held = plugin.read!(h, 3 * PS, 0, 0) as Buffer[];
    expect(held).toHaveLength(3);
    await plugin.trim!(h, PS, 0, 0);
    await plugin.zero!(h, PS, PS, 0);
    await plugin.pwrite!(h, Buffer.alloc(PS), 2 * PS, 0); // all-zero page write frees too
    expect(store.stats().pages).toBe(0);
    for (let i = 0; i < 256; i++) await plugin.pwrite!(h, Buffer.alloc(PS, (i % 250) + 2), i * PS, 0);
    for (const b of held) expect(allAre(b, 0xaa)).toBe(true);
    expect(store.stats().slabBytes).toBe(2 * 2 ** 20);
    expect(allAre(readAll(plugin, h, PS, 0), 2)).toBe(true);
  });

  it('evacuates sparse slabs into fresh memory, keeping data and earlier reads intact', () => {
    const store = new SparseStore(2 ** 20, PS, 16 * PS); // 16 pages a slab; evacuated at 4 live
    for (let i = 0; i < 64; i++) store.write(Buffer.alloc(PS, i + 1), i * PS);
    expect(store.stats().slabBytes).toBe(4 * 16 * PS);
    const held = Array.from({ length: 64 }, (_, i) => store.read(PS, i * PS)[0]!);
    for (let i = 0; i < 64; i++) if (i % 4 !== 0) store.zero(PS, i * PS); // 4 of 16 left in each slab
    // All 16 live pages were copied into one fresh slab; the four old ones are released.
    expect(store.stats()).toMatchObject({ pages: 16, slabBytes: 16 * PS });
    for (let i = 0; i < 64; i += 4) {
      expect(allAre(Buffer.concat(store.read(PS, i * PS)), i + 1)).toBe(true);
      expect(store.read(PS, i * PS)[0]!.buffer).not.toBe(held[i]!.buffer);
      store.write(Buffer.alloc(PS, 0xee), i * PS); // lands in the new copy only
    }
    held.forEach((b, i) => expect(allAre(b, i + 1)).toBe(true));
  });

  it('bounds memory held after random frees to about 4x the data', () => {
    const store = new SparseStore(2 ** 24, PS, 16 * PS);
    const pages = 4096;
    for (let i = 0; i < pages; i++) store.write(Buffer.alloc(PS, 1), i * PS);
    let seed = 1;
    const rand = (): number => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (let i = 0; i < pages; i++) if (rand() < 0.9) store.zero(PS, i * PS);
    const { allocatedBytes, slabBytes } = store.stats();
    expect(slabBytes).toBeLessThanOrEqual(4 * allocatedBytes + 16 * PS);
  });
});

describe('PageAllocator', () => {
  it('carves distinct zero-filled pages from slabs and never hands a slot out twice', () => {
    const alloc = new PageAllocator(512, 4096);
    const slabs = new Map<ArrayBufferLike, Set<number>>();
    for (let i = 0; i < 40; i++) {
      const page = alloc.alloc(i);
      expect(page.length).toBe(512);
      expect(isAllZero(page)).toBe(true);
      page.fill(0xff);
      const offsets = slabs.get(page.buffer) ?? new Set<number>();
      expect(offsets.has(page.byteOffset)).toBe(false);
      offsets.add(page.byteOffset);
      slabs.set(page.buffer, offsets);
      if (i % 2 === 0) alloc.release(page); // freed slots must not come back
    }
    expect(slabs.size).toBe(5); // 8 pages a slab
    for (const [buf] of slabs) expect(buf.byteLength).toBe(4096);
  });

  it('caps the slab at the export size and checks the slab size', () => {
    expect(new PageAllocator(4096, 2 ** 20, 3 * 4096 + 1).slabSize).toBe(4 * 4096);
    expect(new PageAllocator(4096, 2 ** 20, 0).slabSize).toBe(4096);
    expect(() => new PageAllocator(4096, 6000)).toThrow(RangeError);
  });
});

const STORE_MODELS: { name: string; pageSize: number; make(size: number): PageStore }[] = [
  { name: 'SparseStore', pageSize: 512, make: (size) => new SparseStore(size, 512) },
  ...(native === null
    ? []
    : [{ name: 'MappedStore', pageSize: PS, make: (size: number) => MappedStore.create(size, PS) }]),
];

describe.each(STORE_MODELS)('$name against a flat Buffer model', ({ pageSize, make }) => {
  const SIZE = 5 * pageSize + 37; // not a multiple of the page size: the last page is partial
  const { range, op } = arbitraries(SIZE);

  let store: PageStore;
  beforeEach(() => {
    store = make(SIZE);
  });

  it('a read result only ever shows data written at its own offsets', () => {
    // Byte values depend on their offset, so page memory given to another offset would show.
    const pattern = (pos: number, fill: number): number => (fill === 0 ? 0 : ((pos * 7 + fill * 50) % 255) + 1);
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.nat({ max: 29 }), (ops, at) => {
        store = make(SIZE);
        let held: Buffer[] = [];
        let allowed: Set<number>[] = []; // per byte: its value when read, zero, or anything written there since
        ops.forEach((o, n) => {
          if (n === at) {
            held = store.read(SIZE, 0);
            allowed = Array.from(Buffer.concat(held), (b) => new Set([b, 0]));
          }
          if (o.kind === 'write') {
            const buf = Buffer.alloc(o.length);
            for (let i = 0; i < o.length; i++) {
              buf[i] = pattern(o.offset + i, o.fill);
              allowed[o.offset + i]?.add(buf[i]!);
            }
            store.write(buf, o.offset);
          } else {
            store.zero(o.length, o.offset);
          }
        });
        const seen = Buffer.concat(held);
        expect([...seen].findIndex((b, i) => !allowed[i]!.has(b))).toBe(-1);
      }),
      { numRuns: 500 },
    );
  });

  it('reads, extents and page counts always agree with the model', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), range, (ops, probe) => {
        store = make(SIZE);
        const model = Buffer.alloc(SIZE);
        for (const o of ops) {
          if (o.kind === 'write') {
            const buf = opData(o);
            store.write(buf, o.offset);
            buf.copy(model, o.offset);
          } else {
            store.zero(o.length, o.offset);
            model.fill(0, o.offset, o.offset + o.length);
          }
        }
        // Buffer.equals: toEqual compares big buffers byte by byte, slowly
        expect(
          Buffer.concat(store.read(probe.length, probe.offset)).equals(
            model.subarray(probe.offset, probe.offset + probe.length),
          ),
        ).toBe(true);
        // Extents tile the range exactly, and data extents cover every non-zero byte.
        const ext = store.extents(probe.length, probe.offset);
        let pos = probe.offset;
        for (const e of ext) {
          expect(e.offset).toBe(pos);
          expect(e.length).toBeGreaterThan(0);
          if (e.type !== ExtentType.DATA) expect(isAllZero(model.subarray(e.offset, e.offset + e.length))).toBe(true);
          pos += e.length;
        }
        expect(pos).toBe(probe.offset + probe.length);
        // Only pages with non-zero bytes may stay allocated after writes/zeros... except
        // partially overwritten pages, which are kept; so check the upper bound only.
        const pagesWithData = new Set<number>();
        for (let i = 0; i < SIZE; i++) if (model[i] !== 0) pagesWithData.add(Math.floor(i / pageSize));
        expect(store.stats().pages).toBeGreaterThanOrEqual(pagesWithData.size);
      }),
      { numRuns: 300 },
    );
  });
});
