import { readFileSync, fstatSync } from 'node:fs';

/** The sysfs directory of a block device, from the device number in its stat. */
function sysfsDir(fd: number): string {
  const rdev = fstatSync(fd, { bigint: true }).rdev;
  // glibc's major()/minor() encoding of dev_t
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `/sys/dev/block/${major}:${minor}`;
}

/** Size of a block device from sysfs (in 512-byte sectors there): used when the addon is missing. */
export function blockDeviceSizeFromSysfs(fd: number): number {
  const sectors = Number(readFileSync(`${sysfsDir(fd)}/size`, 'utf8').trim());
  if (!Number.isSafeInteger(sectors)) throw new Error('cannot read the block device size from sysfs');
  return sectors * 512;
}

/** Whether a block device says it spins; false when unknown. */
export function isRotationalDevice(fd: number): boolean {
  for (const rel of ['queue/rotational', '../queue/rotational']) {
    // partitions: ask the parent disk
    try {
      return readFileSync(`${sysfsDir(fd)}/${rel}`, 'utf8').trim() === '1';
    } catch {
      // try the next place
    }
  }
  return false;
}
