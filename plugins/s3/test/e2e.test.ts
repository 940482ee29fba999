// The whole path as a user takes it: an ext4 image made with mke2fs -d is
// uploaded with nbdts-s3 (one object, multipart), served by `nbdts s3 -r`,
// exposed as a file by nbdfuse, loop-mounted read-only, and every file
// compared. Then a split disk: created, formatted and filled through nbdfuse,
// served again by a new server and checked. Needs root, /dev/fuse and loop devices.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureCeph,
  requireTool,
  runOk,
  startNbdts,
  tempDir,
  treeChecksums,
  withLoopMount,
  withNbdfuse,
  writeRandomTree,
  type CephEnv,
  type TempDir,
} from '@nbdts/testkit';
import type { S3Store } from '../src/s3-store.ts';
import { createBucket, removeBucket, uniqueBucket } from './helpers.ts';

const CTL = fileURLToPath(new URL('../bin/nbdts-s3.js', import.meta.url));

let env: CephEnv;
let store: S3Store;
let dir: TempDir;
let want: Record<string, string>;
/** Keys travel in the environment (env:NAME), never on a command line. */
let keyEnv: Record<string, string>;
let common: string[];

beforeAll(async () => {
  for (const t of ['nbdfuse', 'fusermount3', 'mke2fs', 'mount', 'umount', '/dev/fuse']) requireTool(t);
  env = await ensureCeph();
  store = await createBucket(env, uniqueBucket('e2e'));
  dir = tempDir('nbdts-s3-e2e-');
  writeRandomTree(dir.join('tree'), 30, 1 << 20, (p) => mkdirSync(p, { recursive: true }));
  want = await treeChecksums(dir.join('tree'));
  keyEnv = { NBDTS_TEST_S3_AK: env.accessKey, NBDTS_TEST_S3_SK: env.secretKey };
  common = [
    `endpoint-url=${env.endpoint}`,
    'access-key=env:NBDTS_TEST_S3_AK',
    'secret-key=env:NBDTS_TEST_S3_SK',
    `bucket=${store.bucket}`,
  ];
});
afterAll(async () => {
  if (store) await removeBucket(store);
  dir?.cleanup();
});

async function ctl(...args: string[]): Promise<string> {
  const r = await runOk(
    process.execPath,
    [
      CTL,
      ...args,
      '--endpoint-url',
      env.endpoint,
      '--access-key',
      'env:NBDTS_TEST_S3_AK',
      '--secret-key',
      'env:NBDTS_TEST_S3_SK',
    ],
    { env: keyEnv, timeoutMs: 120_000 },
  );
  return r.stdout + r.stderr;
}

describe('nbdts s3 end to end', () => {
  it('serves an ext4 image uploaded as one object: mounted read-only, files identical', async () => {
    const img = dir.join('fs.img');
    await runOk(requireTool('mke2fs'), ['-q', '-t', 'ext4', '-d', dir.join('tree'), img, '64M']);
    expect(await ctl('upload', img, store.bucket, 'fs.img')).toMatch(/multipart/);
    const server = await startNbdts(['-r', 's3', ...common, 'key=fs.img', 'chunk-size=256K'], { env: keyEnv });
    try {
      await withNbdfuse(
        server.uri,
        dir.join('fuse1'),
        (nbd) =>
          withLoopMount(
            nbd,
            dir.join('mnt1'),
            async () => {
              const got = await treeChecksums(dir.join('mnt1'));
              delete got['lost+found'];
              expect(got).toEqual(want);
            },
            'ro',
          ),
        { readonly: true },
      );
    } finally {
      expect(await server.stop()).toBe(0);
    }
    expect(server.stderr()).not.toContain(env.secretKey);
  });

  it('a split disk: mkfs and copy through nbdfuse, then read back from a new server', async () => {
    await ctl('create', store.bucket, 'vol', '--size', '64M', '--object-size', '1M');
    const args = ['s3', ...common, 'key=vol'];
    const first = await startNbdts(args, { env: keyEnv });
    try {
      await withNbdfuse(first.uri, dir.join('fuse2'), async (nbd) => {
        await runOk(requireTool('mke2fs'), ['-q', '-t', 'ext4', '-F', nbd]);
        await withLoopMount(
          nbd,
          dir.join('mnt2'),
          async () => {
            await runOk('cp', ['-a', `${dir.join('tree')}/.`, dir.join('mnt2')]);
          },
          'rw',
        );
      });
    } finally {
      expect(await first.stop()).toBe(0);
    }
    expect(await ctl('info', store.bucket, 'vol')).toMatch(
      /split disk, size=67108864 object-size=1048576 .* objects stored, unlocked/,
    );
    const second = await startNbdts(['-r', ...args], { env: keyEnv });
    try {
      await withNbdfuse(
        second.uri,
        dir.join('fuse3'),
        (nbd) =>
          withLoopMount(
            nbd,
            dir.join('mnt3'),
            async () => {
              const got = await treeChecksums(dir.join('mnt3'));
              delete got['lost+found'];
              expect(got).toEqual(want);
            },
            'ro',
          ),
        { readonly: true },
      );
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});
