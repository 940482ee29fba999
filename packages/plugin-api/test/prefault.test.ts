import { describe, expect, it } from 'vitest';
import { isAllZero } from '../src/index.ts';
import { PrefaultedBuffers } from '../src/engine.ts';

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
    const source = new PrefaultedBuffers(4 * MiB);
    try {
      const first = source.take(MiB); // a size seen once: allocated on the spot, no reserve yet
      expect(first.length).toBe(MiB);
      expect(isAllZero(first)).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
      expect(source.reserved(MiB)).toBe(0);
      source.take(MiB); // asked for again: the helper is asked for 4
      await until(() => source.reserved(MiB) === 4);
      await new Promise((r) => setTimeout(r, 50));
      expect(source.reserved(MiB)).toBe(4); // never more than the bound
      const fromReserve = source.take(MiB);
      expect(fromReserve.length).toBe(MiB);
      expect(fromReserve.byteOffset).toBe(0);
      expect(fromReserve.buffer.byteLength).toBe(MiB); // a whole ArrayBuffer of its own, moved to this thread
      expect(isAllZero(fromReserve)).toBe(true);
      await until(() => source.reserved(MiB) === 4);
    } finally {
      source.close();
    }
    expect(source.reserved(MiB)).toBe(0);
    expect(isAllZero(source.take(MiB))).toBe(true); // after close: allocated on the spot
  });

  it('keeps a reserve per size, for at most four sizes, and allocates small sizes on the spot', async () => {
    const source = new PrefaultedBuffers(4 * MiB);
    try {
      for (const n of [MiB, 2 * MiB, 4096]) {
        source.take(n);
        source.take(n);
      }
      await until(() => source.reserved(MiB) === 4 && source.reserved(2 * MiB) === 2);
      expect(source.reserved(4096)).toBe(0);
      // Four more sizes, each asked for twice: the two least recently taken lose their reserves.
      for (const n of [256 * 1024, 512 * 1024, 768 * 1024, 3 * MiB]) {
        source.take(n);
        source.take(n);
      }
      await until(() => source.reserved(3 * MiB) === 1 && source.reserved(256 * 1024) === 16);
      expect(source.reserved(MiB)).toBe(0);
      expect(source.reserved(2 * MiB)).toBe(0);
    } finally {
      source.close();
    }
  });
});
