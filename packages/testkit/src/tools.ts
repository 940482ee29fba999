import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The Debian package that provides each external tool the tests use. */
const DEBIAN_PACKAGE: Record<string, string> = {
  nbdinfo: 'libnbd-bin',
  nbdcopy: 'libnbd-bin',
  nbdfuse: 'libnbd-bin',
  nbdsh: 'python3-libnbd',
  nbdkit: 'nbdkit',
  'qemu-io': 'qemu-utils',
  'qemu-img': 'qemu-utils',
  'qemu-nbd': 'qemu-utils',
  fio: 'fio',
  fusermount3: 'fuse3',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  mount: 'mount',
  umount: 'mount',
  rsync: 'rsync',
  genisoimage: 'genisoimage',
  xorriso: 'xorriso',
  '/dev/fuse': 'fuse3 (and a kernel with FUSE; in a container pass --device /dev/fuse)',
};

// sbin directories are searched too: tests run as root but PATH may lack them.
function searchPath(): string[] {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin']) if (!dirs.includes(d)) dirs.push(d);
  return dirs;
}

/** Full path of an executable on PATH (or in an sbin directory), or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of searchPath()) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* keep looking */
    }
  }
  return undefined;
}

/**
 * Full path of a required tool. Throws (so the test FAILS rather than skips)
 * naming the Debian package to install: a missing client must never turn
 * into a silently green suite.
 */
export function requireTool(name: string): string {
  if (name.startsWith('/')) {
    try {
      accessSync(name, constants.R_OK | constants.W_OK);
      return name;
    } catch {
      /* fall through */
    }
  } else {
    const found = findTool(name);
    if (found) return found;
  }
  const pkg = DEBIAN_PACKAGE[name] ?? '(unknown: add it to packages/testkit/src/tools.ts)';
  throw new Error(
    `required tool '${name}' is missing: install the Debian package ${pkg} ` +
      `(run scripts/setup.sh as root, or: apt-get install -y ${pkg.split(' ')[0]})`,
  );
}

/** PATH with /usr/bin first, so nbdsh finds Debian's python3 (which has the nbd module). */
export function systemFirstPath(): string {
  return ['/usr/bin', '/bin', '/usr/sbin', '/sbin', process.env.PATH ?? ''].join(delimiter);
}
