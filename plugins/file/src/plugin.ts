import * as fs from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import {
  ConfigError,
  ExtentType,
  Flag,
  definePlugin,
  formatSize,
  log,
  nbdError,
  param,
  z,
  type Extent,
  type FlagBits,
  type Plugin,
} from '@nbdts/plugin-api';
import { Advice, BUILD_HINT, isUnsupported, loadNative, type FileOps } from './native.ts';
import { closeFd, fdatasync, openFd, readFull, writeFull, writeZeros } from './io.ts';
import { blockDeviceSizeFromSysfs, isRotationalDevice } from './block-device.ts';

export const fileConfig = z.object({
  file: param
    .path()
    .describe('The file or block device to serve. It must exist: create one with e.g. truncate -s 1G disk.img'),
  fadvise: z
    .enum(['normal', 'random', 'sequential'])
    .default('normal')
    .describe('Tell the kernel how clients will read, to tune read-ahead (needs the native helpers)'),
});

export type FileConfig = z.output<typeof fileConfig>;

export interface FileHandle {
  readonly fd: number;
  readonly path: string;
  readonly readonly: boolean;
  readonly blockDevice: boolean;
}

export interface FilePluginOptions {
  /**
   * The native helpers. Default: load the built addon. `null` runs without it
   * (as if it were not built), which tests use to check the fallbacks.
   */
  native?: FileOps | null;
}

/** Per extents call; the client asks again from where the answer stopped. */
const MAX_EXTENTS = 1024;

const WRITE_DENIED = new Set(['EACCES', 'EPERM', 'EROFS']);

/** Make a file plugin. The CLI uses the default export; tests inject `native`. */
export function createFilePlugin(options: FilePluginOptions = {}): Plugin<FileConfig, FileHandle> {
  const loaded =
    options.native === undefined
      ? loadNative()
      : options.native === null
        ? { ops: null, error: 'the native helpers are disabled' }
        : { ops: options.native };
  const native: FileOps | null = loaded.ops;
  const nativeError = loaded.error;

  let path = '';
  let fadvise: FileConfig['fadvise'] = 'normal';
  let writable = true;
  // What the filesystem turned out not to support: learned on first failure,
  // so later requests go straight to the fallback.
  let canPunch = native !== null;
  let canZeroRange = native !== null;
  let canAllocate = native !== null;
  let canSeekHole = native !== null;

  async function punch(h: FileHandle, count: number, offset: number): Promise<boolean> {
    if (!canPunch || native === null) return false;
    try {
      await native.punchHole(h.fd, offset, count);
      return true;
    } catch (err) {
      if (!isUnsupported(err)) throw err;
      canPunch = false;
      log.debug(`file: ${path}: cannot punch holes here (${(err as Error).message}); trim is a no-op`);
      return false;
    }
  }

  async function zeroInPlace(h: FileHandle, count: number, offset: number): Promise<boolean> {
    if (!canZeroRange || native === null) return false;
    try {
      await native.zeroRange(h.fd, offset, count);
      return true;
    } catch (err) {
      if (!isUnsupported(err)) throw err;
      canZeroRange = false;
      log.debug(`file: ${path}: no ZERO_RANGE here (${(err as Error).message}); trying other ways to zero`);
      return false;
    }
  }

  /** Punch then reallocate: zeros that stay allocated, where ZERO_RANGE is missing (tmpfs). */
  async function punchAndAllocate(h: FileHandle, count: number, offset: number): Promise<boolean> {
    if (!canAllocate || native === null || !(await punch(h, count, offset))) return false;
    try {
      await native.allocate(h.fd, offset, count);
    } catch (err) {
      if (!isUnsupported(err)) throw err;
      canAllocate = false; // the range is zero already, just not allocated
    }
    return true;
  }

  function allData(count: number, offset: number): Extent[] {
    return [{ offset, length: count, type: ExtentType.DATA }];
  }

  /** Walk SEEK_DATA/SEEK_HOLE from offset. */
  function seekExtents(ops: FileOps, h: FileHandle, count: number, offset: number, flags: FlagBits): Extent[] {
    const max = (flags & Flag.REQ_ONE) !== 0 ? 1 : MAX_EXTENTS;
    const end = offset + count;
    const out: Extent[] = [];
    let pos = offset;
    while (pos < end && out.length < max) {
      const data = ops.lseekData(h.fd, pos);
      if (data === -1 || data >= end) {
        // no data from pos to the end of the range
        out.push({ offset: pos, length: end - pos, type: ExtentType.SPARSE });
        break;
      }
      if (data > pos) {
        out.push({ offset: pos, length: data - pos, type: ExtentType.SPARSE });
        pos = data;
        if (out.length === max) break;
      }
      const hole = ops.lseekHole(h.fd, pos);
      const stop = hole === -1 || hole > end ? end : hole;
      // stop === pos only if a concurrent trim punched pos meanwhile: look again.
      if (stop > pos) out.push({ offset: pos, length: stop - pos, type: ExtentType.DATA });
      pos = stop;
    }
    return out;
  }

  const plugin = definePlugin({
    name: 'file',
    version: '0.1.0',
    description: 'Serve a file or block device',
    usage: [
      'Serves an existing file or block device. Opened read-write when possible, else read-only.',
      'Sparse files stay sparse: trim punches holes and extents report them (needs the native helpers:',
      'npm run build:native -w @nbdts/plugin-file).',
      'Example: nbdts file disk.img',
    ].join('\n'),
    config: fileConfig,
    magicConfigKey: 'file',

    getReady(config) {
      path = resolvePath(config.file);
      fadvise = config.fadvise;
      let st: fs.Stats;
      try {
        st = fs.statSync(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new ConfigError(
          code === 'ENOENT'
            ? `file: ${path} does not exist; create it first, e.g. truncate -s 1G ${path}`
            : `file: cannot stat ${path}: ${(err as Error).message}`,
        );
      }
      if (!st.isFile() && !st.isBlockDevice()) {
        throw new ConfigError(`file: ${path} is not a regular file or a block device`);
      }
      // Probe once whether we may write, so every connection gets the same answer.
      let fd: number;
      try {
        fd = fs.openSync(path, fs.constants.O_RDWR);
        writable = true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!WRITE_DENIED.has(code)) throw new ConfigError(`file: cannot open ${path}: ${(err as Error).message}`);
        try {
          fd = fs.openSync(path, fs.constants.O_RDONLY);
        } catch (err2) {
          throw new ConfigError(`file: cannot open ${path}: ${(err2 as Error).message}`);
        }
        writable = false;
        log.info(`file: ${path} is not writable (${code}); serving it read-only`);
      }
      fs.closeSync(fd);
      if (native === null) {
        log.info(
          `file: ${nativeError ?? 'no native helpers'}: extents report all data, trim is off and zero writes zeros; ${BUILD_HINT}`,
        );
      }
      const kind = st.isBlockDevice() ? 'block device' : `${formatSize(st.size)} file`;
      log.info(`file: serving ${kind} ${path}${writable ? '' : ' (read-only)'}`);
    },

    // Every thread opens the file itself: sharing is its path and what getReady learned.
    threads: {
      share: () => ({ path, fadvise, writable }),
      attach(shared) {
        ({ path, fadvise, writable } = shared as { path: string; fadvise: FileConfig['fadvise']; writable: boolean });
      },
    },

    async open(_exportName, readonly) {
      const ro = readonly || !writable;
      let fd: number;
      try {
        fd = await openFd(path, ro ? fs.constants.O_RDONLY : fs.constants.O_RDWR);
      } catch (err) {
        throw nbdError('EIO', `file: cannot open ${path}: ${(err as Error).message}`, err);
      }
      const blockDevice = fs.fstatSync(fd).isBlockDevice();
      // Advice is per open file description, so it is given again for each connection.
      if (fadvise !== 'normal' && native !== null) native.fadvise(fd, 0, 0, Advice[fadvise]);
      return { fd, path, readonly: ro, blockDevice };
    },

    close: (h) => closeFd(h.fd),

    getSize(h) {
      if (!h.blockDevice) return fs.fstatSync(h.fd).size;
      return native !== null ? native.blkGetSize64(h.fd) : blockDeviceSizeFromSysfs(h.fd);
    },

    canWrite: (h) => !h.readonly,
    canFlush: () => true,
    canFua: () => 'native',
    // fdatasync on any descriptor flushes the file for every connection.
    canMultiConn: () => true,
    isRotational: (h) => h.blockDevice && isRotationalDevice(h.fd),

    pread: (h, buf, offset) => readFull(h.fd, buf, offset),

    async pwrite(h, buf, offset, flags) {
      await writeFull(h.fd, buf, offset);
      if ((flags & Flag.FUA) !== 0) await fdatasync(h.fd);
    },

    flush: (h) => fdatasync(h.fd),

    // Without the addon these stay undefined: the engine then advertises no
    // trim, emulates zero with writes, and reports every extent as data.
    ...(native === null
      ? {}
      : {
          canZero: () => 'native' as const,
          canFastZero: () => true,

          // NBD_CMD_CACHE: start read-ahead into the page cache and answer at once.
          cache(h: FileHandle, count: number, offset: number) {
            native.fadvise(h.fd, offset, count, Advice.willneed);
          },

          async trim(h: FileHandle, count: number, offset: number, flags: FlagBits) {
            // Trim is advisory: where holes cannot be punched, doing nothing is correct.
            await punch(h, count, offset);
            if ((flags & Flag.FUA) !== 0) await fdatasync(h.fd);
          },

          async zero(h: FileHandle, count: number, offset: number, flags: FlagBits) {
            const done =
              ((flags & Flag.MAY_TRIM) !== 0 && (await punch(h, count, offset))) ||
              (await zeroInPlace(h, count, offset)) ||
              (await punchAndAllocate(h, count, offset));
            if (!done) {
              if ((flags & Flag.FAST_ZERO) !== 0)
                throw nbdError('ENOTSUP', 'file: this filesystem cannot zero quickly');
              await writeZeros(h.fd, count, offset);
            }
            if ((flags & Flag.FUA) !== 0) await fdatasync(h.fd);
          },

          extents(h: FileHandle, count: number, offset: number, flags: FlagBits): readonly Extent[] {
            if (h.blockDevice || !canSeekHole || native === null) return allData(count, offset);
            try {
              return seekExtents(native, h, count, offset, flags);
            } catch (err) {
              const code = (err as NodeJS.ErrnoException).code;
              if (code !== 'EINVAL' && !isUnsupported(err)) throw err;
              canSeekHole = false;
              log.debug(
                `file: ${path}: SEEK_DATA/SEEK_HOLE unavailable (${(err as Error).message}); reporting all data`,
              );
              return allData(count, offset);
            }
          },
        }),
  });
  return plugin;
}
