import { describe, expect, it } from 'vitest';
import { isAllZero } from '@nbdts/plugin-api';
import { PrefaultedSlabs, SparseStore } from '../src/index.ts';

const MiB = 1024 * 1024;

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('prefaulted slabs', () => {
  it('hands out zero-filled slabs of the size asked, from a reserve the helper thread refills to its bound', async () => {
    const source = new PrefaultedSlabs(4 * MiB);
    try {
      const first = source.take(MiB); // reserve empty: allocated on the spot, and the helper is asked for 4
      expect(first.length).toBe(MiB);
      expect(isAllZero(first)).toBe(true);
      await until(() => source.reserved === 4);
      await new Promise((r) => setTimeout(r, 50));
      expect(source.reserved).toBe(4); // never more than the bound
      const fromReserve = source.take(MiB);
      expect(fromReserve.length).toBe(MiB);
      expect(fromReserve.byteOffset).toBe(0);
      expect(fromReserve.buffer.byteLength).toBe(MiB); // a whole ArrayBuffer of its own, moved to this thread
      expect(isAllZero(fromReserve)).toBe(true);
      await until(() => source.reserved === 4);
    } finally {
      source.close();
    }
    expect(source.reserved).toBe(0);
    expect(isAllZero(source.take(MiB))).toBe(true); // after close: allocated on the spot
  });

  it('a store on prefaulted slabs keeps every byte written across many slabs', async () => {
    const source = new PrefaultedSlabs(2 * MiB);
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
