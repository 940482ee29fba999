import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseSize, parseBool, formatSize, ConfigError } from '../src/index.ts';

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['0', 0],
    ['1K', 1024],
    ['1k', 1024],
    ['512M', 512 * 2 ** 20],
    ['1G', 2 ** 30],
    ['1.5T', 1.5 * 2 ** 40],
    ['64KiB', 65536],
    ['2MB', 2 * 2 ** 20],
    ['100s', 51200],
    ['1P', 2 ** 50],
    ['  8 G ', 8 * 2 ** 30],
  ])('%s = %d', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'abc', '-1', '1X', '1.5', '1.3K', '16E', '1E', '1 2'])(
    'rejects %j with a ConfigError naming the input',
    (text) => {
      expect(() => parseSize(text, 'size')).toThrow(ConfigError);
      expect(() => parseSize(text, 'size')).toThrow(/^size: /);
    },
  );

  it('round-trips every whole number of KiB', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (k) => parseSize(`${k}K`) === k * 1024));
  });
});

describe('parseBool', () => {
  it('accepts nbdkit forms', () => {
    for (const t of ['1', 'true', 'YES', 'on']) expect(parseBool(t)).toBe(true);
    for (const f of ['0', 'false', 'No', 'off']) expect(parseBool(f)).toBe(false);
    expect(() => parseBool('maybe', 'force')).toThrow(/^force: expected/);
  });
});

describe('formatSize', () => {
  it('uses the largest exact unit', () => {
    expect(formatSize(2 ** 30)).toBe('1 GiB');
    expect(formatSize(1536)).toBe('1536 bytes');
    expect(formatSize(3 * 2 ** 20)).toBe('3 MiB');
  });
});
