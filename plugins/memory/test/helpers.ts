import { expect } from 'vitest';
import fc from 'fast-check';
import { ensureAddon } from '@nbdts/testkit';
import {
  createMemoryPlugin,
  loadNative,
  type MemoryHandle,
  type MemoryPluginOptions,
  type RegionOps,
} from '../src/index.ts';

export const PS = 4096; // small pages keep the tests quick and the page arithmetic visible

/** The addon (built on demand); null where it cannot be built: then the mapped-store tests are skipped. */
export function ensureNative(): RegionOps | null {
  return ensureAddon('@nbdts/plugin-memory', loadNative, 'mapped-store tests');
}

/** A fresh plugin instance, configured and opened the way the engine does it. */
export async function openMemory(size: string, pageSize = PS, store: MemoryPluginOptions['store'] = 'js') {
  const plugin = createMemoryPlugin({ pageSize, store });
  const config = await plugin.config!.parseAsync({ size });
  await plugin.getReady!(config, { readonly: false });
  const h = await plugin.open('', false);
  return { plugin, h, store: plugin.store! };
}

/** Join what read() returned and check it is exactly `count` bytes. */
export function readAll(
  plugin: ReturnType<typeof createMemoryPlugin>,
  h: MemoryHandle,
  count: number,
  offset: number,
): Buffer {
  const parts = plugin.read!(h, count, offset, 0) as Buffer[];
  const out = Buffer.concat(parts);
  expect(out.length).toBe(count);
  return out;
}

export type Op =
  | { kind: 'write'; offset: number; length: number; fill: number }
  | { kind: 'zero' | 'trim'; offset: number; length: number };

/** Random ranges and operations over an export of `size` bytes. */
export function arbitraries(size: number) {
  const range = fc
    .integer({ min: 0, max: size })
    .chain((offset) => fc.integer({ min: 0, max: size - offset }).map((length) => ({ offset, length })));
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.tuple(range, fc.integer({ min: 0, max: 3 })).map(([r, fill]) => ({ kind: 'write' as const, ...r, fill })),
    range.map((r) => ({ kind: 'zero' as const, ...r })),
    range.map((r) => ({ kind: 'trim' as const, ...r })),
  );
  return { range, op };
}

/** Write buffer of a model operation: fill 0 writes zeros; otherwise a pattern with some zero bytes in it. */
export function opData(o: Op & { kind: 'write' }): Buffer {
  const buf = Buffer.alloc(o.length);
  for (let i = 0; i < o.length; i++) buf[i] = o.fill === 0 ? 0 : i % 5 === 0 ? 0 : o.fill;
  return buf;
}
