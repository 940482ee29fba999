/**
 * An example nbdts plugin: a RAM disk held in one Buffer.
 *
 *   nbdts ./examples/ramdisk-plugin/src/index.ts size=64M pattern=hello
 *
 * It is deliberately simple (the built-in `memory` plugin is the fast, sparse
 * one). Copy this file to start your own plugin: everything a plugin can do is
 * optional except open, getSize and pread (or read).
 */
import { constants as bufferConstants } from 'node:buffer';
import { ConfigError, ExtentType, Flag, definePlugin, formatSize, log, param, z, type Extent } from '@nbdts/plugin-api';

// Parameters: a zod object. Every value arrives as a string from `key=value`;
// the param helpers parse it. Keys are camelCase here, kebab-case on the command line.
const config = z.object({
  size: param.size().describe('Disk size, e.g. 64M'),
  pattern: z.string().optional().describe('Fill the disk with this text, repeated (default: zeros)'),
  shared: param
    .bool()
    .default(true)
    .describe('true: all connections see one disk; false: each connection gets its own, freed when it disconnects'),
});
type Config = z.output<typeof config>;

/** What open() returns; the engine passes it back to every other callback. */
interface Handle {
  disk: Buffer;
}

/** Extents are computed by scanning this much at a time. */
const BLOCK = 4096;
/** ... and at most this many blocks per call: the engine asks again for the rest. */
const MAX_SCAN = 1024;

let settings: Config;
let sharedDisk: Buffer | undefined;

function makeDisk(): Buffer {
  let disk: Buffer;
  try {
    disk = Buffer.alloc(settings.size);
  } catch (err) {
    // One Buffer may be as large as the address space, but the memory must exist.
    if (!(err instanceof RangeError)) throw err;
    throw new ConfigError(
      `ramdisk: cannot allocate ${formatSize(settings.size)} at once (${err.message}); use the memory plugin, which allocates as data is written`,
    );
  }
  if (settings.pattern) disk.fill(settings.pattern);
  return disk;
}

export default definePlugin({
  name: 'ramdisk',
  version: '0.1.0',
  description: 'Example: a RAM disk filled with a text pattern',
  usage: 'Example: nbdts ./examples/ramdisk-plugin/src/index.ts size=64M pattern=hello',
  config,
  // A bare argument (`nbdts ./index.ts 64M`) means size=64M.
  magicConfigKey: 'size',

  // Check combinations of parameters; ConfigError prints one line and exits.
  configComplete(c) {
    if (c.size > bufferConstants.MAX_LENGTH) {
      throw new ConfigError(
        `ramdisk: size ${formatSize(c.size)} is larger than one Buffer can hold; use the memory plugin instead`,
      );
    }
  },

  // Called once before serving: allocate what all connections share.
  getReady(c) {
    settings = c;
    sharedDisk = c.shared ? makeDisk() : undefined;
    log.info(`ramdisk: ${formatSize(c.size)}${c.shared ? ', shared by all connections' : ', one per connection'}`);
  },

  unload() {
    sharedDisk = undefined;
  },

  // One handle per connection. readonly is true with -r: the engine then
  // refuses writes itself, so there is nothing to do here.
  open(_exportName, _readonly): Handle {
    return { disk: sharedDisk ?? makeDisk() };
  },

  close(h) {
    log.debug(`ramdisk: connection closed (${formatSize(h.disk.length)} ${settings.shared ? 'kept' : 'freed'})`);
  },

  getSize: (h) => h.disk.length,

  // Only connections to one shared disk see each other's writes at once.
  canMultiConn: () => settings.shared,
  // RAM is as durable as this disk gets, so FUA needs no extra work.
  canFua: () => 'native',

  // The engine has already checked that offset + buf.length is within getSize.
  pread(h, buf, offset) {
    h.disk.copy(buf, 0, offset, offset + buf.length);
  },

  // buf belongs to the engine and is reused after we return: copy it.
  pwrite(h, buf, offset, flags) {
    buf.copy(h.disk, offset);
    if ((flags & Flag.FUA) !== 0) {
      // A disk backed by storage would make this write durable here.
    }
  },

  // Nothing to do for memory; defining flush tells clients they may send it.
  flush() {},

  // Report all-zero blocks as ZERO (allocated, reads as zeros) so clients such
  // as `qemu-img convert` can skip them.
  extents(h, count, offset): Extent[] {
    const out: Extent[] = [];
    const end = Math.min(offset + count, offset + MAX_SCAN * BLOCK);
    for (let pos = offset; pos < end;) {
      const next = Math.min((Math.floor(pos / BLOCK) + 1) * BLOCK, end);
      const zero = isZero(h.disk.subarray(pos, next));
      const type = zero ? ExtentType.ZERO : ExtentType.DATA;
      const last = out.at(-1);
      if (last?.type === type) last.length += next - pos;
      else out.push({ offset: pos, length: next - pos, type });
      pos = next;
    }
    return out;
  },
});

const ZERO_BLOCK = Buffer.alloc(BLOCK);
function isZero(buf: Buffer): boolean {
  return buf.equals(ZERO_BLOCK.subarray(0, buf.length));
}
