import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Md5Offload } from '../src/index.ts';

const reference = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('MD5 on the helper thread', () => {
  it('gives the same digests as node:crypto, for small, odd and large sizes, many at once', async () => {
    const md5 = new Md5Offload();
    const inputs = [0, 1, 4096, 256 * 1024 - 1, 256 * 1024, 1024 * 1024 + 3, 4 * 1024 * 1024, 4 * 1024 * 1024].map(
      (n) => randomBytes(n),
    );
    // More at once than there are slots: the rest wait for one, none is lost or mixed up.
    const many = Array.from({ length: 12 }, () => randomBytes(1024 * 1024));
    const all = [...inputs, ...many];
    const got = await Promise.all(all.map((b) => md5.hex(b)));
    expect(got).toEqual(all.map(reference));
  });

  it('hashes inputs above the slot limit on this thread, correctly', async () => {
    const big = Buffer.alloc(9 * 1024 * 1024, 7);
    expect(await new Md5Offload().hex(big)).toBe(reference(big));
  });
});
