import { loadAddon, type AddonLoad } from '@nbdts/plugin-api/engine';

/**
 * The calls the native addon (native/fileops.c) provides. Failures throw, or
 * reject with, an Error whose `code` is the errno name (EOPNOTSUPP, ...).
 */
export interface FileOps {
  /** Next offset holding data at or after `offset`; -1 when there is none (ENXIO). */
  lseekData(fd: number, offset: number): number;
  /** Next hole at or after `offset` (end of file counts as a hole); -1 past the end. */
  lseekHole(fd: number, offset: number): number;
  /** fallocate(PUNCH_HOLE | KEEP_SIZE): free the blocks; the range reads as zeros. */
  punchHole(fd: number, offset: number, length: number): Promise<void>;
  /** fallocate(ZERO_RANGE | KEEP_SIZE): make the range read as zeros, keeping it allocated. */
  zeroRange(fd: number, offset: number, length: number): Promise<void>;
  /** fallocate(KEEP_SIZE): allocate blocks for the range. */
  allocate(fd: number, offset: number, length: number): Promise<void>;
  /** ioctl(BLKGETSIZE64): size of a block device. */
  blkGetSize64(fd: number): number;
  /** posix_fadvise(offset, length, advice); length 0 means to the end of the file. */
  fadvise(fd: number, offset: number, length: number, advice: Advice): void;
}

/** posix_fadvise advice, as fileops.c numbers it. */
export const Advice = { normal: 0, random: 1, sequential: 2, willneed: 3, dontneed: 4 } as const;
export type Advice = (typeof Advice)[keyof typeof Advice];

const FUNCTIONS = ['lseekData', 'lseekHole', 'punchHole', 'zeroRange', 'allocate', 'blkGetSize64', 'fadvise'] as const;

/** Where `npm run build:native -w @nbdts/plugin-file` puts the addon. */
export const ADDON_PATH = '../native/build/Release/fileops.node';

export const BUILD_HINT =
  'build them with: npm run build:native -w @nbdts/plugin-file (needs python3, make and a C compiler)';

export type NativeLoad = AddonLoad<FileOps>;

/** Load the addon if it was built. Never throws: the plugin works without it, with fewer features. */
export function loadNative(): NativeLoad {
  return loadAddon<FileOps>(import.meta.url, ADDON_PATH, FUNCTIONS, { name: 'the native helpers', plural: true });
}

/** Errors meaning "this filesystem or kernel cannot do that": fall back rather than fail. */
export function isUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOSYS';
}
