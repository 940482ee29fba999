import { execFileSync } from 'node:child_process';
import type { AddonLoad } from '@nbdts/plugin-api/engine';
import { repoRoot } from './paths.ts';

/**
 * A workspace's native addon, built on demand so tests cover it (scripts/setup.sh
 * normally has built it). Null, with a warning naming `skipping`, where it
 * cannot be built: callers then skip what needs it and test the fallback.
 */
export function ensureAddon<T>(workspace: string, load: () => AddonLoad<T>, skipping: string): T | null {
  let loaded = load();
  if (loaded.ops === null && process.platform === 'linux') {
    try {
      execFileSync('npm', ['run', 'build:native', '-w', workspace], {
        cwd: repoRoot,
        stdio: 'ignore',
        timeout: 120_000,
      });
    } catch {
      /* reported below */
    }
    loaded = load();
  }
  if (loaded.ops === null) console.warn(`skipping ${skipping}: ${loaded.error}`);
  return loaded.ops;
}
