import { definePlugin, formatSize, log, param, z, ConfigError, Flag, type Plugin } from '@nbdts/plugin-api';
import { PrefaultedBuffers, freshSlabs } from '@nbdts/plugin-api/engine';
import { SparseStore } from './sparse-store.ts';
import { MappedStore } from './mapped-store.ts';
import { loadNative, BUILD_HINT } from './native.ts';
import { DEFAULT_PAGE_SIZE } from './store.ts';
import { DEFAULT_SLAB_SIZE } from './page-allocator.ts';

export const memoryConfig = z.object({
  size: param.size().describe('Size of the RAM disk, e.g. 1G. Memory is used only for data written.'),
});

export type MemoryConfig = z.output<typeof memoryConfig>;

/** The plugin's store: shared by every thread (MappedStore) or JS buffers on the main thread (SparseStore). */
export type MemoryStore = SparseStore | MappedStore;

/** One per connection; every handle of a plugin instance (in any thread) shares the same data. */
export interface MemoryHandle {
  readonly store: MemoryStore;
}

export interface MemoryPluginOptions {
  /**
   * Which store: 'mapped' (memory shared by all threads; needs the native
   * addon), 'js' (SparseStore: JS buffers, connections stay on the main
   * thread), 'auto' (default): mapped when it can be, else js.
   */
  store?: 'auto' | 'mapped' | 'js';
  /**
   * Page size in bytes (power of two; for the mapped store a multiple of the
   * OS page). Tests use small pages; the default is measured to be fastest.
   */
  pageSize?: number;
  /** JS store: pages are carved from slabs this big (a multiple of pageSize; capped at the export size). */
  slabSize?: number;
  /**
   * JS store: bytes of slabs a helper thread keeps faulted in ahead of writes
   * (default PREFAULT_RESERVE; 0: none, every slab is allocated when first needed).
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
  /** The store once getReady (or threads.attach) has run, undefined before: for stats and tests. */
  readonly store: MemoryStore | undefined;
} {
  let store: MemoryStore | undefined;

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
      const kind = options.store ?? 'auto';
      let sparse: SparseStore;
      try {
        const mapped = kind === 'js' ? undefined : mappedStore(config.size, pageSize, kind === 'mapped');
        if (mapped !== undefined) {
          store = mapped;
          log.info(
            `memory: ${formatSize(config.size)} RAM disk in ${formatSize(pageSize)} pages of memory ` +
              'shared by all threads, used as data is written',
          );
          return;
        }
        const reserve = Math.min(options.prefault ?? PREFAULT_RESERVE, config.size);
        store = sparse = new SparseStore(
          config.size,
          pageSize,
          options.slabSize ?? DEFAULT_SLAB_SIZE,
          reserve > 0 ? new PrefaultedBuffers(reserve) : freshSlabs,
        );
      } catch (err) {
        throw new ConfigError(`memory: ${(err as Error).message}`);
      }
      log.info(
        `memory: ${formatSize(config.size)} RAM disk, allocated in ${formatSize(pageSize)} pages ` +
          `(carved from ${formatSize(sparse.slabSize)} slabs) as data is written`,
      );
    },

    // Workers reach the main thread's mapping; the JS store cannot be shared, so decline.
    threads: {
      share: () => (store instanceof MappedStore ? store.share() : undefined),
      attach(shared) {
        store = MappedStore.attach(shared);
        log.debug(`memory: attached to the shared ${formatSize(store.size)} store`);
      },
    },

    unload() {
      if (store === undefined) return;
      log.debug('memory: freeing store', { ...store.stats() });
      if (store instanceof MappedStore) {
        if (store.owner) store.clear(); // an attached copy must leave the data to its creator
        store.dispose();
      } else {
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
    pwrite(h, buf, offset) {
      h.store.write(buf, offset);
    },
    flush() {},
    trim(h, count, offset) {
      h.store.zero(count, offset);
    },
    zero(h, count, offset) {
      h.store.zero(count, offset);
    },
    extents: (h, count, offset, flags) => h.store.extents(count, offset, (flags & Flag.REQ_ONE) !== 0 ? 1 : Infinity),
    cache() {},
  });

  return Object.defineProperty(plugin, 'store', { get: () => store, enumerable: false }) as typeof plugin & {
    readonly store: MemoryStore | undefined;
  };
}

/**
 * A MappedStore, or undefined (logged) when it cannot be had and `required`
 * is false: no addon, a page size the OS cannot map, or mmap refused the size.
 */
function mappedStore(size: number, pageSize: number, required: boolean): MappedStore | undefined {
  const native = loadNative();
  let why: string;
  if (native.ops === null) {
    why = `${native.error}; ${BUILD_HINT}`;
  } else if (pageSize % native.ops.pageSize() !== 0) {
    why = `the page size ${pageSize} is not a multiple of the OS page size ${native.ops.pageSize()}`;
  } else {
    try {
      return MappedStore.create(size, pageSize, native.ops);
    } catch (err) {
      why = `cannot map ${formatSize(size)}: ${(err as Error).message}`;
    }
  }
  if (required) throw new Error(`the mapped store is unavailable: ${why}`);
  log.debug(`memory: using the JS store, so connections stay on the main thread: ${why}`);
  return undefined;
}
