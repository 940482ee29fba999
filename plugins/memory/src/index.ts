import { createMemoryPlugin } from './plugin.ts';

export {
  createMemoryPlugin,
  memoryConfig,
  PREFAULT_RESERVE,
  type MemoryConfig,
  type MemoryHandle,
  type MemoryPluginOptions,
  type MemoryStore,
} from './plugin.ts';
export { DEFAULT_PAGE_SIZE, type PageStore, type StoreStats } from './store.ts';
export { SparseStore, type SparseStoreStats } from './sparse-store.ts';
export { MappedStore, WINDOW, type MappedShared } from './mapped-store.ts';
export { loadNative, type RegionOps } from './native.ts';
export { PageAllocator, DEFAULT_SLAB_SIZE } from './page-allocator.ts';

/** The built-in `memory` plugin: `nbdts memory size=1G`. */
export default createMemoryPlugin();
