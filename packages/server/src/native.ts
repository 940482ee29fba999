/**
 * The engine's native helper (native/fdops.c): duplicating an accepted
 * socket's descriptor so a worker thread can own it. Optional: without it
 * every connection is served on the main thread.
 */
import { createRequire } from 'node:module';

export interface FdOps {
  dupFd(fd: number): number;
  closeFd(fd: number): void;
}

export const FDOPS_BUILD_HINT = 'build it with: npm run build:native -w @nbdts/server (needs python3, make and a C compiler)';

/** The ops, or why they are not available. Never throws. */
export function loadFdOps(): { ops: FdOps } | { ops: null; error: string } {
  if (process.platform !== 'linux') return { ops: null, error: `the native helper is Linux-only (this is ${process.platform})` };
  try {
    const ops = createRequire(import.meta.url)('../native/build/Release/fdops.node') as Partial<FdOps>;
    if (typeof ops.dupFd !== 'function' || typeof ops.closeFd !== 'function') {
      return { ops: null, error: 'the native helper is out of date; rebuild it' };
    }
    return { ops: ops as FdOps };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ops: null, error: code === 'MODULE_NOT_FOUND' ? 'the native helper is not built' : `cannot load the native helper: ${(err as Error).message}` };
  }
}
