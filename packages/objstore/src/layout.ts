import { ConfigError } from '@nbdts/plugin-api';
import type { ObjectStore } from './store.ts';

/**
 * Where chunk i of the device lives. The block layer works in chunks; a layout
 * says which object (and which byte range of it) holds each one, so the cache,
 * readahead, retries and parallelism are the same for every layout.
 */
export interface Layout {
  /** Device size in bytes. */
  readonly size: number;
  /** Bytes per chunk (the object size). Every chunk but the last is this long. */
  readonly chunkSize: number;
  /** Number of chunks: ceil(size / chunkSize). */
  readonly chunks: number;
  /** True when the device cannot be written (single-object layout). */
  readonly readOnly: boolean;
  /**
   * Prefix to list at start to learn which chunks exist (for extents and to
   * skip needless deletes). Undefined when every chunk always exists.
   */
  readonly listPrefix: string | undefined;
  /** Length of chunk i (shorter only for the last chunk). */
  chunkLength(i: number): number;
  /** The object holding chunk i; `range` set when the chunk is part of a larger object. */
  locate(i: number): { key: string; range?: { offset: number; length: number } };
  /**
   * For layouts whose chunks are ranges of one object: the range holding
   * chunks i..i+n-1, so readahead can fetch several in one GET. Absent when
   * each chunk is an object of its own.
   */
  locateRun?(i: number, n: number): { key: string; range: { offset: number; length: number } };
  /** Chunk index for a key from a listing, or null when the key is not one of ours. */
  indexOf(key: string): number | null;
  /**
   * Body lengths a full GET of chunk i may return: chunkLength(i), and for a
   * short last chunk also chunkSize (the tail is ignored).
   */
  acceptsLength(i: number, length: number): boolean;
}

/** How a backend names object i: `keyOf` and its inverse for parsing listings. */
export interface KeyScheme {
  /** Common prefix of every key (listed at start). */
  prefix: string;
  keyOf(i: number): string;
  indexOf(key: string): number | null;
}

/** Keys `PREFIX` + i in `radix` padded to `width` digits: Swift `disk.part/%08d`, S3 `KEY/%016x`. */
export function paddedKeys(prefix: string, radix: 10 | 16, width: number): KeyScheme {
  const digits = radix === 10 ? /^[0-9]+$/ : /^[0-9a-f]+$/;
  return {
    prefix,
    keyOf: (i) => prefix + i.toString(radix).padStart(width, '0'),
    indexOf(key) {
      if (!key.startsWith(prefix)) return null;
      const rest = key.slice(prefix.length);
      // Exactly `width` digits (more when i outgrows the padding): rejects
      // stray objects such as "disk.part/00000001.tmp" or lock files.
      if (rest.length < width || !digits.test(rest)) return null;
      if (rest.length > width && rest[0] === '0') return null;
      const n = Number.parseInt(rest, radix);
      return Number.isSafeInteger(n) ? n : null;
    },
  };
}

function checkSizes(size: number, chunkSize: number): void {
  if (!Number.isSafeInteger(size) || size < 0)
    throw new ConfigError(`device size must be a whole number of bytes, got ${size}`);
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 512) {
    throw new ConfigError(`object size must be at least 512 bytes, got ${chunkSize}`);
  }
}

/** The device split into objects of `objectSize` bytes, object i at `keys.keyOf(i)`. Read-write. */
export class ObjectsLayout implements Layout {
  readonly size: number;
  readonly chunkSize: number;
  readonly chunks: number;
  readonly readOnly = false;
  readonly listPrefix: string;
  readonly #keys: KeyScheme;

  constructor(opts: { size: number; objectSize: number; keys: KeyScheme }) {
    checkSizes(opts.size, opts.objectSize);
    this.size = opts.size;
    this.chunkSize = opts.objectSize;
    this.chunks = Math.ceil(opts.size / opts.objectSize);
    this.listPrefix = opts.keys.prefix;
    this.#keys = opts.keys;
  }

  chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }

  locate(i: number): { key: string } {
    return { key: this.#keys.keyOf(i) };
  }

  indexOf(key: string): number | null {
    const i = this.#keys.indexOf(key);
    return i !== null && i >= 0 && i < this.chunks ? i : null;
  }

  acceptsLength(i: number, length: number): boolean {
    return length === this.chunkLength(i) || (i === this.chunks - 1 && length === this.chunkSize);
  }
}

/**
 * One existing object served read-only: chunk i is the byte range
 * [i*chunkSize, (i+1)*chunkSize) of `key`, fetched with ranged GETs.
 */
export class SingleObjectLayout implements Layout {
  readonly size: number;
  readonly chunkSize: number;
  readonly chunks: number;
  readonly readOnly = true;
  readonly listPrefix = undefined;
  readonly key: string;

  constructor(opts: { key: string; size: number; chunkSize: number }) {
    checkSizes(opts.size, opts.chunkSize);
    this.key = opts.key;
    this.size = opts.size;
    this.chunkSize = opts.chunkSize;
    this.chunks = Math.ceil(opts.size / opts.chunkSize);
  }

  chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }

  locate(i: number): { key: string; range: { offset: number; length: number } } {
    return { key: this.key, range: { offset: i * this.chunkSize, length: this.chunkLength(i) } };
  }

  locateRun(i: number, n: number): { key: string; range: { offset: number; length: number } } {
    const offset = i * this.chunkSize;
    return { key: this.key, range: { offset, length: Math.min(n * this.chunkSize, this.size - offset) } };
  }

  /** The layout for an existing object, its size from HEAD. Throws ConfigError when it does not exist. */
  static async forObject(store: ObjectStore, key: string, chunkSize: number): Promise<SingleObjectLayout> {
    const info = await store.head(key);
    if (info === null) throw new ConfigError(`${store.description}: object '${key}' does not exist`);
    return new SingleObjectLayout({ key, size: info.size, chunkSize });
  }

  indexOf(): null {
    return null;
  }

  acceptsLength(i: number, length: number): boolean {
    return length === this.chunkLength(i);
  }
}
