import { ConfigError } from './errors.ts';

// Binary multipliers, as nbdkit_parse_size accepts them (1K = 1024). "s" is a 512-byte sector.
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  s: 512,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
  e: 2 ** 60,
};

/** The largest size nbdts handles: offsets are JS numbers, exact up to 2^53. */
export const MAX_SIZE = Number.MAX_SAFE_INTEGER;

/**
 * Parse a size such as `4096`, `512M`, `1G`, `1.5T`, `64KiB`, `100s`.
 * Fractions are allowed when the result is a whole number of bytes.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bskmgtpe]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) {
    throw new ConfigError(`${what}: cannot parse '${text}' as a size (examples: 4096, 512M, 1G, 1.5T)`);
  }
  const unit = UNITS[m[2]!.toLowerCase()]!;
  const value = Number(m[1]) * unit;
  if (!Number.isInteger(value)) {
    throw new ConfigError(`${what}: '${text}' is not a whole number of bytes`);
  }
  if (value > MAX_SIZE) {
    throw new ConfigError(`${what}: '${text}' is larger than the maximum supported size (8 PiB)`);
  }
  return value;
}

/** Parse a boolean the way nbdkit_parse_bool does. */
export function parseBool(text: string, what = 'value'): boolean {
  switch (text.trim().toLowerCase()) {
    case '1':
    case 'true':
    case 'yes':
    case 'on':
      return true;
    case '0':
    case 'false':
    case 'no':
    case 'off':
      return false;
    default:
      throw new ConfigError(`${what}: expected true/false, yes/no, on/off or 1/0, got '${text}'`);
  }
}

/** Format a byte count for people: 1073741824 -> "1 GiB". */
export function formatSize(bytes: number): string {
  const names = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < names.length - 1 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v} ${names[i]}`;
}
