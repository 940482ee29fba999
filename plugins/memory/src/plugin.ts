import {
  definePlugin, formatSize, log, param, z, ConfigError, Flag, PrefaultedBuffers, freshSlabs, type Plugin,
} from '@nbdts/plugin-api';
import { SparseStore, DEFAULT_PAGE_SIZE } from './sparse-store.ts';
import { DEFAULT_SLAB_SIZE } from './page-allocator.ts';

export const memoryConfig = z.object({
  size: param.size().describe('Size of the RAM disk, e.g. 1G. Memory is used only for data written.'),
});

export type MemoryConfig = z.output<typeof memoryConfig>;

/** One per connection; every handle of a plugin instance shares the same store. */
export interface MemoryHandle {
  readonly store: SparseStore;
}

export interface MemoryPluginOptions {
  /** Page size in bytes (power of two). Tests use small pages; the default is measured to be fastest. */
  pageSize?: number;
  /** Pages are carved from slabs this big (a multiple of pageSize; capped at the export size). */
  slabSize?: number;
  /**
   * Bytes of slabs a helper thread keeps faulted in ahead of writes (default
   * PREFAULT_RESERVE; 0: none, every slab is allocated when first needed).
   */
  prefault?: number;
}

/** 16 MiB: enough that a sequential write at full speed rarely finds the reserve empty. */
export const PREFAULT_RESERVE = 16 * 1024 * 1024;

/**
 * Make a memory plugin with its own store. The CLI uses the default export;
 * tests make fresh instances so they do not share data.
 */
export function createMemoryPlugin(options: MemoryPluginOptions = {}): Plugin<MemoryConfig, MemoryHandle> & {
  /** The store once getReady has run (undefined before): for stats and tests. */
  readonly store: SparseStore | undefined;
} {
  let store: SparseStore | undefined;

  const plugin = definePlugin({
    name: 'memory',
    version: '0.1.0',
    description: 'A sparse RAM disk: memory is allocated only where data is written',
    usage: [
      'Serves a disk held in memory. Nothing survives a restart. All connections see the same data.',
      'Unwritten and trimmed areas use no memory and are reported as holes.',
      'Example: nbdts memory 1G',
    ].join('\n'),
    config: memoryConfig,
    magicConfigKey: 'size',

    getReady(config) {
      const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
      try {
        const reserve = Math.min(options.prefault ?? PREFAULT_RESERVE, config.size);
        store = new SparseStore(config.size, pageSize, options.slabSize ?? DEFAULT_SLAB_SIZE,
          reserve > 0 ? new PrefaultedBuffers(reserve) : freshSlabs);
      } catch (err) {
        throw new ConfigError(`memory: ${(err as Error).message}`);
      }
      log.info(`memory: ${formatSize(config.size)} RAM disk, allocated in ${formatSize(pageSize)} pages ` +
        `(carved from ${formatSize(store.slabSize)} slabs) as data is written`);
    },

    unload() {
      if (store !== undefined) {
        log.debug('memory: freeing store', { ...store.stats() });
        store.clear();
      }
    },

    open() {
      if (store === undefined) throw new Error('memory: open called before getReady');
      return { store };
    },

    getSize: (h) => h.store.size,

    // Data in RAM is as durable as it will ever be: flush and FUA cost nothing,
    // and advertising them lets clients that insist on them connect.
    canFlush: () => true,
    canFua: () => 'native',
    canMultiConn: () => true,
    canTrim: () => true,
    canZero: () => 'native',
    canFastZero: () => true,
    canExtents: () => true,
    // Everything is already "cached": answer NBD_CMD_CACHE at once rather than
    // let the engine read and discard.
    canCache: () => 'native',
    isRotational: () => false,

    read: (h, count, offset) => h.store.read(count, offset),
    pwrite(h, buf, offset) { h.store.write(buf, offset); },
    flush() {},
    trim(h, count, offset) { h.store.zero(count, offset); },
    zero(h, count, offset) { h.store.zero(count, offset); },
    extents: (h, count, offset, flags) =>
      h.store.extents(count, offset, (flags & Flag.REQ_ONE) !== 0 ? 1 : Infinity),
    cache() {},
  });

  return Object.defineProperty(plugin, 'store', { get: () => store, enumerable: false }) as typeof plugin & {
    readonly store: SparseStore | undefined;
  };
}
