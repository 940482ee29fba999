import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireLock, md5Hex } from '@nbdts/objstore';
import { tempDir, type TempDir } from '@nbdts/testkit';
import { ensureCeph, type CephEnv } from '@nbdts/testkit';
import { main } from '../src/ctl/main.ts';
import { lockKey } from '../src/disk.ts';
import type { S3Store } from '../src/s3-store.ts';
import { createBucket, removeBucket, uniqueBucket } from './helpers.ts';

describe('nbdts-s3 control commands', () => {
  let env: CephEnv;
  let store: S3Store;
  let dir: TempDir;

  beforeAll(async () => {
    env = await ensureCeph();
    store = await createBucket(env, uniqueBucket('ctl'));
    dir = tempDir('nbdts-s3-ctl-');
    process.env.NBDTS_TEST_CTL_SK = env.secretKey;
  });
  afterAll(async () => {
    if (store) await removeBucket(store);
    dir?.cleanup();
  });

  async function ctl(...args: string[]): Promise<{ status: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const status = await main(
      [
        ...args,
        '--endpoint-url',
        env.endpoint,
        '--access-key',
        env.accessKey,
        '--secret-key',
        'env:NBDTS_TEST_CTL_SK',
        '-q',
      ],
      { out: (l) => out.push(l), err: (l) => err.push(l) },
    );
    return { status, out: out.join('\n'), err: err.join('\n') };
  }

  it('uploads into a split disk skipping zeros, downloads it sparse, and deletes it', async () => {
    const img = Buffer.alloc(2 * 1024 * 1024);
    randomBytes(100_000).copy(img, 1_000_000);
    const file = dir.join('split.img');
    writeFileSync(file, img);
    const up = await ctl('upload', file, store.bucket, 'sd', '--object-size', '256K', '--jobs', '4');
    expect(up.status).toBe(0);
    expect(up.err).toMatch(/2 objects stored, 6 all-zero objects skipped/);
    expect((await ctl('info', store.bucket, 'sd')).out).toMatch(
      /split disk, size=2097152 object-size=262144 .*2 of 8 objects stored, unlocked/,
    );
    const back = dir.join('split-back.img');
    expect((await ctl('download', store.bucket, 'sd', back)).status).toBe(0);
    expect(md5Hex(readFileSync(back))).toBe(md5Hex(img));
    expect(statSync(back).blocks * 512).toBeLessThan(img.length);
    // Upload again with less data: the object that became zeros is deleted.
    writeFileSync(file, Buffer.alloc(img.length));
    expect((await ctl('upload', file, store.bucket, 'sd', '--object-size', '256K')).err).toMatch(/0 objects stored/);
    expect((await ctl('info', store.bucket, 'sd')).out).toMatch(/0 of 8 objects stored/);
    expect((await ctl('delete', store.bucket, 'sd')).status).toBe(0);
    expect((await ctl('info', store.bucket, 'sd')).err).toMatch(/nothing at/);
  });

  it('uploads and downloads a single object', async () => {
    const img = randomBytes(3 * 1024 * 1024 + 7);
    const file = dir.join('one.img');
    writeFileSync(file, img);
    expect((await ctl('upload', file, store.bucket, 'one.img')).status).toBe(0);
    expect((await ctl('info', store.bucket, 'one.img')).out).toMatch(/object, size=3145735/);
    const back = dir.join('one-back.img');
    expect((await ctl('download', store.bucket, 'one.img', back)).status).toBe(0);
    expect(readFileSync(back).equals(img)).toBe(true);
    expect((await ctl('delete', store.bucket, 'one.img')).status).toBe(0);
  });

  it('create refuses an existing disk; delete refuses a locked one without --force', async () => {
    expect((await ctl('create', store.bucket, 'cd', '--size', '1M', '--object-size', '64K')).status).toBe(0);
    const again = await ctl('create', store.bucket, 'cd', '--size', '1M', '--object-size', '64K');
    expect(again.status).toBe(1);
    expect(again.err).toMatch(/already holds a disk/);
    await acquireLock(store, lockKey('cd'), 'otherhost/123/abc');
    expect((await ctl('info', store.bucket, 'cd')).out).toMatch(/locked by otherhost\/123\/abc/);
    const del = await ctl('delete', store.bucket, 'cd');
    expect(del.status).toBe(1);
    expect(del.err).toMatch(/in use: locked by otherhost\/123\/abc.*--force/);
    expect((await ctl('delete', store.bucket, 'cd', '--force')).status).toBe(0);
    expect(await store.head(lockKey('cd'))).toBeNull();
  });

  it('says what is wrong in one line', async () => {
    const r = await main(
      [
        'info',
        store.bucket,
        'x',
        '--endpoint-url',
        env.endpoint,
        '--access-key',
        env.accessKey,
        '--secret-key',
        'wrong',
      ],
      {
        out: () => {},
        err: (l) => {
          expect(l).toMatch(/^nbdts-s3: .*denied.*(SignatureDoesNotMatch|AccessDenied).*secret-key/);
        },
      },
    );
    expect(r).toBe(1);
    expect((await ctl('create', store.bucket, 'y')).err).toMatch(/--size and --object-size/);
  });
});
