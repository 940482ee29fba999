/**
 * Read a socket into buffers we choose instead of a fresh 64 KiB allocation
 * per read: the `onread` feature of net.Socket, which Node offers only for
 * sockets it creates itself, so accepted sockets get it through the same
 * internal fields. This removes most garbage collection under nbdcopy-style
 * loads, lets one read take up to READ_BUFFER bytes, and lets the
 * connection aim the next read straight into a write payload's buffer (no
 * copy). If the internals are missing (another Node version) the caller
 * falls back to 'data' events.
 */
import net from 'node:net';

export const READ_BUFFER = 256 * 1024;

interface Internals {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

let internals: Internals | null | undefined;

function findInternals(): Internals | null {
  if (internals !== undefined) return internals;
  internals = null;
  try {
    const opts = { onread: { buffer: Buffer.alloc(1), callback: () => true } };
    const probe = new net.Socket(opts as unknown as net.SocketConstructorOpts);
    const syms = Object.getOwnPropertySymbols(probe);
    const by = (d: string): symbol | undefined => syms.find((s) => s.description === d);
    const kBuffer = by('kBuffer');
    const kBufferCb = by('kBufferCb');
    const kBufferGen = by('kBufferGen');
    probe.destroy();
    if (kBuffer && kBufferCb && kBufferGen) internals = { kBuffer, kBufferCb, kBufferGen };
  } catch {
    internals = null;
  }
  return internals;
}

type Handle = { useUserBuffer?: (b: Uint8Array) => void; reading?: boolean };

export interface ReadTarget {
  /** Point the next read at `buf` (a payload's unfilled tail) or, with undefined, at the shared buffer. */
  set(buf: Buffer | undefined): void;
}

/**
 * Install `onChunk` as the reader of a socket that has not started reading
 * (accepted with pauseOnConnect). A chunk is a view of memory the next read
 * overwrites unless it lies in a buffer given to `next`: copy what you keep.
 * After every chunk, `next()` may name where the following read should land
 * (undefined: the shared read buffer). Returns undefined when not possible;
 * then nothing was changed.
 */
export function installReadBuffer(
  socket: net.Socket,
  onChunk: (chunk: Buffer) => void,
  next: () => Buffer | undefined,
): ReadTarget | undefined {
  if (process.env.NBDTS_NO_FASTREAD) return undefined;
  const k = findInternals();
  const handle = (socket as unknown as { _handle?: Handle })._handle;
  if (!k || !handle || typeof handle.useUserBuffer !== 'function' || handle.reading) return undefined;
  const shared = Buffer.allocUnsafeSlow(READ_BUFFER);
  const s = socket as unknown as Record<symbol, unknown>;
  let current: Buffer = shared;
  s[k.kBuffer] = shared;
  s[k.kBufferCb] = (n: number, b: Buffer): boolean => {
    onChunk(b.subarray(0, n));
    return true;
  };
  // Node asks for the next read's buffer after every callback; returning one replaces kBuffer.
  s[k.kBufferGen] = (): Buffer => {
    current = next() ?? shared;
    return current;
  };
  handle.useUserBuffer(shared);
  return {
    set(buf) {
      const target = buf ?? shared;
      if (target === current) return;
      current = target;
      s[k.kBuffer] = target;
      const h = (socket as unknown as { _handle?: Handle })._handle;
      h?.useUserBuffer?.(target);
    },
  };
}
