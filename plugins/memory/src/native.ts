import { createRequire } from 'node:module';

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

export const BUILD_HINT = 'build it with: npm run build:native -w @nbdts/plugin-memory (needs python3, make and a C compiler)';

export type NativeLoad = { ops: RegionOps; error?: undefined } | { ops: null; error: string };

let loaded: RegionOps | undefined;

/**
 * Load the addon if it was built (once per thread; a failure is retried, so a
 * build in between is seen). Never throws: without it the plugin uses the JS store.
 */
export function loadNative(): NativeLoad {
  if (loaded !== undefined) return { ops: loaded };
  const result = load();
  if (result.ops !== null) loaded = result.ops;
  return result;
}

function load(): NativeLoad {
  if (process.platform !== 'linux') return { ops: null, error: `shared memory regions are Linux-only (this is ${process.platform})` };
  try {
    const require = createRequire(import.meta.url);
    const ops = require(ADDON_PATH) as Partial<RegionOps>;
    const missing = FUNCTIONS.filter((f) => typeof ops[f] !== 'function');
    if (missing.length > 0) return { ops: null, error: `the native addon is out of date (no ${missing.join(', ')}); rebuild it` };
    return { ops: ops as RegionOps };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ops: null,
      error: code === 'MODULE_NOT_FOUND' ? 'the native addon is not built' : `cannot load the native addon: ${(err as Error).message}`,
    };
  }
}
