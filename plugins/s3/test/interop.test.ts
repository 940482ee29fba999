// nbdkit's S3 plugin (Python, boto3) and nbdts s3 share the split layout
// KEY/%016x: each reads a disk the other wrote. object-size=64K because
// nbdkit advertises the object size as its minimum block size, and NBD caps that at 64 KiB.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { md5Hex } from '@nbdts/objstore';
import { requireTool, runOk, systemFirstPath, tempDir, type TempDir } from '@nbdts/testkit';
import { ensureCeph, type CephEnv } from '@nbdts/testkit';
import { createS3Plugin, s3Config, type S3Config, type S3Disk } from '../src/index.ts';
import type { Plugin } from '@nbdts/plugin-api';
import type { S3Store } from '../src/s3-store.ts';
import { createBucket, removeBucket, uniqueBucket } from './helpers.ts';

const SIZE = 1024 * 1024;

/** An image with data, an all-zero object in the middle and a partly written object. */
function makeImage(): Buffer {
  const img = Buffer.alloc(SIZE);
  randomBytes(200_000).copy(img, 0);
  randomBytes(70_000).copy(img, 600_000);
  return img;
}

describe('split disks shared with nbdkit S3', () => {
  let env: CephEnv;
  let store: S3Store;
  let dir: TempDir;

  beforeAll(async () => {
    requireTool('nbdkit');
    requireTool('nbdcopy');
    env = await ensureCeph();
    store = await createBucket(env, uniqueBucket('interop'));
    dir = tempDir('nbdts-s3-');
  });
  afterAll(async () => {
    if (store) await removeBucket(store);
    dir?.cleanup();
  });

  /** nbdkit -U - S3 ... --run SCRIPT, with Debian's python3 (boto3) first on PATH and the keys from the environment. */
  async function nbdkit(key: string, script: string): Promise<void> {
    await runOk(
      requireTool('nbdkit'),
      [
        '-U',
        '-',
        'S3',
        `endpoint-url=${env.endpoint}`,
        `bucket=${store.bucket}`,
        `key=${key}`,
        `size=${SIZE}`,
        'object-size=64K',
        '--run',
        script,
      ],
      {
        // boto3 reads the keys from the environment: they stay out of the command line.
        env: {
          PATH: systemFirstPath(),
          AWS_ACCESS_KEY_ID: env.accessKey,
          AWS_SECRET_ACCESS_KEY: env.secretKey,
          AWS_DEFAULT_REGION: 'us-east-1',
        },
        timeoutMs: 120_000,
      },
    );
  }

  async function ours(key: string): Promise<{ plugin: Plugin<S3Config, S3Disk>; h: S3Disk }> {
    const plugin = createS3Plugin() as Plugin<S3Config, S3Disk>;
    const config = await s3Config.parseAsync({
      endpointUrl: env.endpoint,
      accessKey: env.accessKey,
      secretKey: env.secretKey,
      bucket: store.bucket,
      key,
      size: String(SIZE),
      objectSize: '64K',
    });
    await plugin.configComplete!(config);
    await plugin.getReady!(config, { readonly: false });
    return { plugin, h: await plugin.open('', false) };
  }

  it('nbdkit reads a disk nbdts wrote', async () => {
    const img = makeImage();
    const { plugin, h } = await ours('by-nbdts');
    try {
      // Unaligned writes, as a client would send them.
      for (let off = 0; off < SIZE; off += 100_000) {
        const end = Math.min(SIZE, off + 100_000);
        if (!img.subarray(off, end).every((b) => b === 0)) await plugin.pwrite!(h, img.subarray(off, end), off, 0);
      }
      await plugin.flush!(h, 0);
    } finally {
      await plugin.unload!();
    }
    const out = dir.join('from-nbdts.img');
    await nbdkit('by-nbdts', `nbdcopy "$uri" ${out}`);
    expect(md5Hex(readFileSync(out))).toBe(md5Hex(img));
  });

  it('nbdts reads a disk nbdkit wrote', async () => {
    const img = makeImage();
    const file = dir.join('to-nbdkit.img');
    writeFileSync(file, img);
    await nbdkit('by-nbdkit', `nbdcopy ${file} "$uri"`);
    const keys: string[] = [];
    for await (const o of store.list('by-nbdkit/')) keys.push(o.key);
    expect(keys[0]).toBe('by-nbdkit/0000000000000000');
    expect(keys.every((k) => /^by-nbdkit\/[0-9a-f]{16}$/.test(k))).toBe(true);
    const { plugin, h } = await ours('by-nbdkit');
    try {
      const buf = Buffer.alloc(SIZE);
      await plugin.pread!(h, buf, 0, 0);
      expect(md5Hex(buf)).toBe(md5Hex(img));
    } finally {
      await plugin.unload!();
    }
  });
});
