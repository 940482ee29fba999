import { createMemoryPlugin } from './plugin.ts';

export { createMemoryPlugin, memoryConfig, PREFAULT_RESERVE, type MemoryConfig, type MemoryHandle, type MemoryPluginOptions } from './plugin.ts';
export { SparseStore, DEFAULT_PAGE_SIZE, type StoreStats } from './sparse-store.ts';
export { PageAllocator, DEFAULT_SLAB_SIZE } from './page-allocator.ts';

/** The built-in `memory` plugin: `nbdts memory size=1G`. */
export default createMemoryPlugin();
