/**
 * The engine's native helper (native/fdops.c): duplicating an accepted
 * socket's descriptor so a worker thread can own it. Optional: without it
 * every connection is served on the main thread.
 */
import { loadAddon, type AddonLoad } from '@nbdts/plugin-api/engine';

export interface FdOps {
  dupFd(fd: number): number;
  closeFd(fd: number): void;
}

export const FDOPS_BUILD_HINT =
  'build it with: npm run build:native -w @nbdts/server (needs python3, make and a C compiler)';

/** The ops, or why they are not available. Never throws. */
export function loadFdOps(): AddonLoad<FdOps> {
  return loadAddon<FdOps>(import.meta.url, '../native/build/Release/fdops.node', ['dupFd', 'closeFd'], {
    name: 'the native helper',
  });
}
