import type { Extent } from '@nbdts/plugin-api';

/**
 * Default page size. 64 KiB measured best overall (see docs/plugins/memory.md):
 * smaller pages cost more lookups and more buffers per read; larger pages
 * waste memory on scattered small writes (a 4 KiB write allocates a whole page).
 */
export const DEFAULT_PAGE_SIZE = 64 * 1024;

export interface StoreStats {
  /** Export size in bytes. */
  size: number;
  pageSize: number;
  /** Pages currently allocated (holding data). */
  pages: number;
  /** Bytes of page storage allocated (pages * pageSize). */
  allocatedBytes: number;
}

/**
 * What the plugin needs of a store (SparseStore, MappedStore): a sparse byte
 * array in pages, where absent pages read as zeros and are reported as holes.
 */
export interface PageStore {
  readonly size: number;
  readonly pageSize: number;
  /** `count` bytes from `offset`, as views of the store's memory and of shared zeros, without copying. */
  read(count: number, offset: number): Buffer[];
  write(buf: Buffer, offset: number): void;
  zero(count: number, offset: number): void;
  extents(count: number, offset: number, maxExtents?: number): Extent[];
  stats(): StoreStats;
  /** Drop every page (unload). */
  clear(): void;
}
