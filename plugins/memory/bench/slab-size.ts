/**
 * Slab size trade-off for the memory plugin's store (docs/plugins/memory.md):
 *   node --expose-gc bench/slab-size.ts SLAB_BYTES [WRITES]
 * First-touch 4 KiB random writes on a fresh 4 GiB store (the case slabs speed
 * up), then the memory held (slabs, arrayBuffers, RSS) after trimming a random
 * half, then 90%, of the pages. SLAB_BYTES=65536 is one buffer per page.
 */
import { SparseStore } from '../src/sparse-store.ts';

const slab = Number(process.argv[2] ?? 2 ** 21);
const writes = Number(process.argv[3] ?? 100_000);
const SIZE = 4 * 2 ** 30;
const PS = 65536;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const mib = (n: number): string => (n / 2 ** 20).toFixed(0);
const kib = (n: number): string => `${n / 1024} KiB`;

const store = new SparseStore(SIZE, PS, slab);
const buf = Buffer.alloc(4096, 0x5a);
const rand = (n: number): number => Math.floor(Math.random() * n);
const t0 = process.hrtime.bigint();
for (let i = 0; i < writes; i++) store.write(buf, rand(SIZE / 4096) * 4096);
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const filled = store.stats();

const row: string[] = [
  `slab ${kib(slab)}`,
  `${Math.round(writes / secs / 1000)}k writes/s`,
  `${mib(filled.allocatedBytes)} MiB in pages`,
  `${mib(filled.slabBytes)} MiB in slabs`,
];
const pages = [...Array(SIZE / PS).keys()].filter((i) => store.extents(1, i * PS)[0]!.type === 0);
pages.sort(() => Math.random() - 0.5);
let trimmed = 0;
for (const fraction of [0.5, 0.9]) {
  for (; trimmed < pages.length * fraction; trimmed++) store.zero(PS, pages[trimmed]! * PS);
  gc();
  const s = store.stats();
  row.push(
    `trim ${fraction * 100}%: ${mib(s.allocatedBytes)} live, ${mib(s.slabBytes)} held, ` +
      `${mib(process.memoryUsage().arrayBuffers)} arrayBuffers, ${mib(process.memoryUsage().rss)} RSS`,
  );
}
console.log(row.join(' | '));
