import { Flag, type BlockSize, type FlagBits, type Plugin, type Support } from '@nbdts/plugin-api';
import type { ObjectDevice } from './device.ts';

/** The largest request the engine will pass us (the NBD maximum most clients use). */
const MAX_REQUEST = 32 * 1024 * 1024;
/** Any alignment works, and the S3 issue asks for at most 64 KiB however large the objects are. */
const MINIMUM = 1;

/** Largest power of two <= n. */
function floorPow2(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

/**
 * Block sizes for a device: any alignment works (partial objects are
 * read-modify-written), so the minimum is 1; the preferred size is one object
 * (a whole-object write needs no read), clamped to what NBD allows.
 */
export function deviceBlockSize(device: ObjectDevice): BlockSize {
  const preferred = Math.min(MAX_REQUEST, Math.max(512, floorPow2(device.chunkSize)));
  return { minimum: MINIMUM, preferred, maximum: MAX_REQUEST };
}

/** The callbacks deviceCallbacks provides; spread them into definePlugin. */
export type DeviceCallbacks<H> = Required<
  Pick<
    Plugin<unknown, H>,
    | 'getSize'
    | 'blockSize'
    | 'canWrite'
    | 'canFlush'
    | 'canTrim'
    | 'canZero'
    | 'canFastZero'
    | 'canFua'
    | 'canExtents'
    | 'canCache'
    | 'canMultiConn'
    | 'isRotational'
    | 'read'
    | 'pread'
    | 'pwrite'
    | 'flush'
    | 'trim'
    | 'zero'
    | 'extents'
    | 'cache'
  >
>;

/**
 * Plugin callbacks serving an ObjectDevice, so a backend plugin only parses
 * its config, makes the store and the device, and opens handles:
 *
 *   definePlugin({ name: 's3', config, getReady, open, close, unload,
 *                  ...deviceCallbacks((h: S3Handle) => h.device) })
 *
 * Every connection may share one device (canMultiConn): the cache is per
 * device, so a flush on any connection stores what every connection wrote.
 * `device` is the device itself or a function from the handle to it.
 */
export function deviceCallbacks<H>(device: ObjectDevice | ((handle: H) => ObjectDevice)): DeviceCallbacks<H> {
  const dev = typeof device === 'function' ? device : () => device;
  const writable = (h: H): boolean => !dev(h).readOnly;
  const fua = (flags: FlagBits) => ({ fua: (flags & Flag.FUA) !== 0 });
  return {
    getSize: (h) => dev(h).size,
    blockSize: (h) => deviceBlockSize(dev(h)),
    canWrite: writable,
    canFlush: () => true,
    canTrim: writable,
    canZero: (h): Support => (writable(h) ? 'native' : 'none'),
    // Zeroing deletes whole objects and read-modify-writes the ends: never slower than writing zeros.
    canFastZero: writable,
    canFua: (h): Support => (writable(h) ? 'native' : 'none'),
    canExtents: () => true,
    canCache: () => 'native',
    canMultiConn: () => true,
    isRotational: () => false,
    // The engine uses read (views of the cache, no copy); pread is there for callers with a buffer to fill.
    read: (h, count, offset) => dev(h).lendViews(count, offset),
    pread: (h, buf, offset) => dev(h).read(buf, offset),
    pwrite: (h, buf, offset, flags) => dev(h).write(buf, offset, fua(flags)),
    flush: (h) => dev(h).flush(),
    trim: (h, count, offset, flags) => dev(h).trim(count, offset, fua(flags)),
    zero: (h, count, offset, flags) => dev(h).zero(count, offset, fua(flags)),
    extents: (h, count, offset, flags) => dev(h).extents(count, offset, { one: (flags & Flag.REQ_ONE) !== 0 }),
    cache: (h, count, offset) => dev(h).prefetch(count, offset),
  };
}
