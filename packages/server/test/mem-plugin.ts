/** A small sparse in-memory plugin for engine tests and benchmarks (64 KiB pages). */
import { ExtentType, NbdError, type Extent, type Plugin } from '@nbdts/plugin-api';

const PAGE = 64 * 1024;

export interface MemOptions {
  size: number;
  /** Implement read (zero-copy) instead of pread. */
  zeroCopy?: boolean;
  description?: string;
  exports?: string[];
  writable?: boolean;
  /** Make every callback async (a resolved promise). */
  async?: boolean;
  blockSize?: { minimum: number; preferred: number; maximum: number };
  /** Called on open/close for tests that count handles. */
  onOpen?: (name: string) => void;
  onClose?: () => void;
  flushes?: { count: number };
  /** Omit these callbacks to exercise the engine's defaults. */
  omit?: Array<'zero' | 'trim' | 'flush' | 'extents' | 'cache'>;
}

export class SparseMemory {
  readonly pages = new Map<number, Buffer>();
  readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  readInto(buf: Buffer, offset: number): void {
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const idx = Math.floor(pos / PAGE);
      const po = pos - idx * PAGE;
      const n = Math.min(PAGE - po, buf.length - done);
      const page = this.pages.get(idx);
      if (page) page.copy(buf, done, po, po + n);
      else buf.fill(0, done, done + n);
      done += n;
    }
  }

  write(buf: Buffer, offset: number): void {
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const idx = Math.floor(pos / PAGE);
      const po = pos - idx * PAGE;
      const n = Math.min(PAGE - po, buf.length - done);
      let page = this.pages.get(idx);
      if (!page) {
        page = Buffer.alloc(PAGE);
        this.pages.set(idx, page);
      }
      buf.copy(page, po, done, done + n);
      done += n;
    }
  }

  zero(count: number, offset: number): void {
    let done = 0;
    while (done < count) {
      const pos = offset + done;
      const idx = Math.floor(pos / PAGE);
      const po = pos - idx * PAGE;
      const n = Math.min(PAGE - po, count - done);
      const page = this.pages.get(idx);
      if (page) {
        if (n === PAGE) this.pages.delete(idx);
        else page.fill(0, po, po + n);
      }
      done += n;
    }
  }

  extents(count: number, offset: number): Extent[] {
    const out: Extent[] = [];
    const end = Math.min(offset + count, this.size);
    let pos = Math.floor(offset / PAGE) * PAGE;
    while (pos < end) {
      const idx = pos / PAGE;
      const type = this.pages.has(idx) ? ExtentType.DATA : ExtentType.SPARSE;
      const len = Math.min(PAGE, this.size - pos);
      const last = out[out.length - 1];
      if (last && last.type === type) last.length += len;
      else out.push({ offset: pos, length: len, type });
      pos += len;
    }
    return out;
  }
}

export function memPlugin(o: MemOptions): { plugin: Plugin<unknown, unknown>; mem: SparseMemory } {
  const mem = new SparseMemory(o.size);
  const wrap = <T>(v: T): T | Promise<T> => (o.async ? Promise.resolve(v) : v);
  const omit = new Set(o.omit ?? []);
  const plugin: Plugin<unknown, SparseMemory> = {
    name: 'testmem',
    listExports: () => (o.exports ?? ['']).map((name) => ({ name, description: `export ${name}` })),
    open(name) {
      if (o.exports && !o.exports.includes(name)) throw new NbdError('ENOENT', `no export ${name}`);
      o.onOpen?.(name);
      return mem;
    },
    close() {
      o.onClose?.();
    },
    getSize: () => o.size,
    exportDescription: () => o.description,
    canMultiConn: () => true,
  };
  if (o.blockSize) plugin.blockSize = () => o.blockSize;
  if (o.zeroCopy) {
    plugin.read = (_h, count, offset) => {
      const b = Buffer.allocUnsafe(count);
      mem.readInto(b, offset);
      return wrap(b);
    };
  } else {
    plugin.pread = (_h, buf, offset) => wrap(mem.readInto(buf, offset));
  }
  if (o.writable !== false) {
    plugin.pwrite = (_h, buf, offset) => wrap(mem.write(buf, offset));
    if (!omit.has('zero')) plugin.zero = (_h, count, offset) => wrap(mem.zero(count, offset));
    if (!omit.has('trim')) plugin.trim = (_h, count, offset) => wrap(mem.zero(count, offset));
  }
  if (!omit.has('flush'))
    plugin.flush = () => {
      if (o.flushes) o.flushes.count++;
      return wrap(undefined);
    };
  if (!omit.has('extents')) plugin.extents = (_h, count, offset) => wrap(mem.extents(count, offset));
  if (!omit.has('cache')) plugin.cache = () => wrap(undefined);
  return { plugin: plugin as Plugin<unknown, unknown>, mem };
}
