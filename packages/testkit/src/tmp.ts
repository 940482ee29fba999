import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  readonly path: string;
  /** A path inside the directory. */
  join(...parts: string[]): string;
  /** Remove the directory and everything in it (idempotent). */
  cleanup(): void;
}

const live = new Set<TempDir>();

/**
 * A fresh private directory under the system temp dir. Short names keep Unix
 * socket paths well under the 108-byte limit. Every test file gets its own,
 * so files running in parallel never share a path.
 */
export function tempDir(prefix = 'nbdts-e2e-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const dir: TempDir = {
    path,
    join: (...parts) => join(path, ...parts),
    cleanup: () => {
      live.delete(dir);
      rmSync(path, { recursive: true, force: true });
    },
  };
  live.add(dir);
  return dir;
}

/** Remove every temp dir made by this process that is still there. */
export function cleanupTempDirs(): void {
  for (const d of [...live]) d.cleanup();
}
