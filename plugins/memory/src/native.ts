import { loadAddon, type AddonLoad } from '@nbdts/plugin-api/engine';

/**
 * The calls of the native addon (native/memregion.c): memory regions that
 * every thread of the process reaches by id. Failures throw an Error whose
 * `code` is the errno name (ENOMEM, ENOENT, EINVAL, ...).
 */
export interface RegionOps {
  /** Map `size` bytes (rounded up to the OS page) of anonymous memory, used only where written. */
  create(size: number): number;
  /** A handle keeping region `id` mapped until it is collected; throws ENOENT once released. */
  attach(id: number): object;
  /** Drop the creator's reference (the mapping goes once no attach handle or window holds it). */
  release(id: number): void;
  /** [offset, +length) of the mapping (length at most 1 GiB); keeps it mapped until collected. */
  window(id: number, offset: number, length: number): ArrayBuffer;
  /** madvise(MADV_DONTNEED) of an OS-page-aligned range: its memory goes back, it reads as zeros. */
  discard(id: number, offset: number, length: number): void;
  /** madvise(MADV_POPULATE_WRITE): fault an aligned range in ahead of writing it (EINVAL before Linux 5.14). */
  populate(id: number, offset: number, length: number): void;
  /** References held on region `id`: creator, attach handles, windows; 0 once unmapped. */
  refs(id: number): number;
  /** sysconf(_SC_PAGESIZE). */
  pageSize(): number;
}

const FUNCTIONS = ['create', 'attach', 'release', 'window', 'discard', 'populate', 'refs', 'pageSize'] as const;

/** Where `npm run build:native -w @nbdts/plugin-memory` puts the addon. */
export const ADDON_PATH = '../native/build/Release/memregion.node';

export const BUILD_HINT =
  'build it with: npm run build:native -w @nbdts/plugin-memory (needs python3, make and a C compiler)';

export type NativeLoad = AddonLoad<RegionOps>;

/** Load the addon if it was built. Never throws: without it the plugin uses the JS store. */
export function loadNative(): NativeLoad {
  return loadAddon<RegionOps>(import.meta.url, ADDON_PATH, FUNCTIONS, { name: 'the native addon' });
}
