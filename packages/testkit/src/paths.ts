import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

/** The monorepo root (this file is packages/testkit/src/paths.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The nbdts command-line entry point. */
export const nbdtsBin = resolve(repoRoot, 'packages/cli/bin/nbdts.js');

/** NBD URI for a Unix socket, as libnbd, qemu and fio accept it. */
export function unixUri(socket: string, exportName = ''): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socket}`;
}
