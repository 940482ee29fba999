/** Stack filters on a plugin, nbdkit-style: filters[0] ends up outermost. */
import type { Plugin } from '@nbdts/plugin-api';
import type { ApplyFilters } from './api.ts';

/**
 * A plain-object view of a plugin layer: every property, including methods
 * from a class prototype, with methods bound to the original object so a
 * plugin written as a class keeps its `this`.
 */
function flatten(layer: Plugin<unknown, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const src = layer as unknown as Record<string, unknown>;
  for (let o: object | null = layer; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const key of Object.getOwnPropertyNames(o)) {
      if (key === 'constructor' || key in out) continue;
      const v = src[key];
      out[key] = typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(layer) : v;
    }
  }
  return out;
}

export const applyFilters: ApplyFilters = (plugin, filters) => {
  let layer: Plugin<unknown, unknown> = plugin;
  for (let i = filters.length - 1; i >= 0; i--) {
    const { filter, config } = filters[i]!;
    const overrides = filter.wrap(layer, config);
    const merged = flatten(layer);
    // Callbacks the filter leaves out (or sets to undefined) pass straight through.
    for (const [k, v] of Object.entries(overrides)) if (v !== undefined) merged[k] = v;
    merged.name = layer.name;
    layer = merged as unknown as Plugin<unknown, unknown>;
  }
  return layer;
};
