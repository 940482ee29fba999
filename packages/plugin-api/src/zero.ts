/** Compared against, never written. */
const ZEROS = Buffer.alloc(1024 * 1024);

/**
 * True when every byte of `buf` is zero (memcmp against a shared zero buffer):
 * lets sparse plugins skip storing zeros.
 */
export function isAllZero(buf: Buffer): boolean {
  for (let pos = 0; pos < buf.length; pos += ZEROS.length) {
    const n = Math.min(ZEROS.length, buf.length - pos);
    if (!buf.subarray(pos, pos + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}
