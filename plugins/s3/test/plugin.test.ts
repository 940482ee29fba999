import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, ExtentType, Flag, type Plugin } from '@nbdts/plugin-api';
import { md5Hex } from '@nbdts/objstore';
import { ensureCeph, type CephEnv } from '@nbdts/testkit';
import { createS3Plugin, s3Config, lockKey, type S3Config, type S3Disk } from '../src/index.ts';
import type { S3Store } from '../src/s3-store.ts';
import { createBucket, removeBucket, uniqueBucket } from './helpers.ts';

type S3Plugin = Plugin<S3Config, S3Disk>;

async function parse(params: Record<string, string>): Promise<S3Config> {
  return s3Config.parseAsync(params);
}

/** getReady + open, as the engine does it. */
async function start(params: Record<string, string>, readonly = false): Promise<{ plugin: S3Plugin; h: S3Disk }> {
  const plugin = createS3Plugin() as S3Plugin;
  const config = await parse(params);
  await plugin.configComplete!(config);
  await plugin.getReady!(config, { readonly });
  return { plugin, h: await plugin.open('', readonly) };
}

async function startFails(params: Record<string, string>): Promise<string> {
  try {
    const { plugin } = await start(params);
    await plugin.unload!();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected start-up to fail');
}

async function read(plugin: S3Plugin, h: S3Disk, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  await plugin.pread!(h, buf, offset, 0);
  return buf;
}

describe('s3 plugin on Ceph RGW', () => {
  let env: CephEnv;
  let store: S3Store;
  let creds: Record<string, string>;
  const image = randomBytes(3 * 1024 * 1024 + 12345);

  beforeAll(async () => {
    env = await ensureCeph();
    store = await createBucket(env, uniqueBucket('plugin'));
    await store.put('image.raw', image, { md5: md5Hex(image) });
    creds = { endpointUrl: env.endpoint, accessKey: env.accessKey, secretKey: env.secretKey, bucket: store.bucket };
  });
  afterAll(async () => {
    if (store) await removeBucket(store);
  });

  it('serves one object read-only with ranged GETs', async () => {
    const { plugin, h } = await start({ ...creds, key: 'image.raw', chunkSize: '256K', readahead: '2' });
    try {
      expect(await plugin.getSize(h)).toBe(image.length);
      expect(await plugin.canWrite!(h)).toBe(false);
      expect(await plugin.canTrim!(h)).toBe(false);
      expect((await plugin.blockSize!(h))!.minimum).toBeLessThanOrEqual(64 * 1024);
      // Unaligned, spanning chunks, the tail, and many at once.
      expect((await read(plugin, h, 0, 4096)).equals(image.subarray(0, 4096))).toBe(true);
      expect((await read(plugin, h, 262_000, 1_000_000)).equals(image.subarray(262_000, 1_262_000))).toBe(true);
      expect((await read(plugin, h, image.length - 100, 100)).equals(image.subarray(-100))).toBe(true);
      const offsets = Array.from({ length: 40 }, (_, i) => (i * 77_777) % (image.length - 65536));
      const parts = await Promise.all(offsets.map((o) => read(plugin, h, o, 65536)));
      parts.forEach((p, i) => expect(p.equals(image.subarray(offsets[i], offsets[i]! + 65536))).toBe(true));
      const ext = await plugin.extents!(h, image.length, 0, 0);
      expect(ext.every((e) => e.type === ExtentType.DATA)).toBe(true);
      await expect(plugin.pwrite!(h, Buffer.alloc(512), 0, 0)).rejects.toMatchObject({ errno: 'EROFS' });
      expect(h.device.stats().peakInFlight).toBeGreaterThan(1);
    } finally {
      await plugin.unload!();
    }
  });

  it('split mode: a read-write disk in KEY/%016x objects, sparse, with trim and zero', async () => {
    const params = { ...creds, key: 'split1', size: '2M', objectSize: '256K' };
    const { plugin, h } = await start(params);
    const data = randomBytes(300_000);
    try {
      expect(await plugin.canWrite!(h)).toBe(true);
      expect((await plugin.blockSize!(h))!.minimum).toBeLessThanOrEqual(64 * 1024);
      await plugin.pwrite!(h, data, 100_000, 0);
      await plugin.pwrite!(h, Buffer.alloc(1000, 7), 1_800_000, Flag.FUA);
      await plugin.flush!(h, 0);
      const keys: string[] = [];
      for await (const o of store.list('split1/')) keys.push(o.key);
      expect(keys).toEqual([
        'split1/0000000000000000',
        'split1/0000000000000001',
        'split1/0000000000000006',
        'split1/nbdts-lock',
      ]);
      expect((await read(plugin, h, 100_000, 300_000)).equals(data)).toBe(true);
      const ext = await plugin.extents!(h, 2 * 1024 * 1024, 0, 0);
      expect(ext[0]).toMatchObject({ offset: 0, length: 512 * 1024, type: ExtentType.DATA });
      expect(ext[1]).toMatchObject({ type: ExtentType.SPARSE });
      // Trim the second object whole: it is deleted.
      await plugin.trim!(h, 256 * 1024, 256 * 1024, Flag.FUA);
      expect(await store.head('split1/0000000000000001')).toBeNull();
      await plugin.zero!(h, 1000, 1_800_000, Flag.FUA);
      expect((await read(plugin, h, 1_800_000, 1000)).equals(Buffer.alloc(1000))).toBe(true);
    } finally {
      await plugin.unload!();
    }
    // The lock is gone; a new server sees the data.
    expect(await store.head(lockKey('split1'))).toBeNull();
    const again = await start(params);
    try {
      expect((await read(again.plugin, again.h, 100_000, 162_144)).equals(data.subarray(0, 162_144))).toBe(true);
      expect((await read(again.plugin, again.h, 262_144, 1000)).equals(Buffer.alloc(1000))).toBe(true);
    } finally {
      await again.plugin.unload!();
    }
  });

  it('verify-etag=false (SSE-KMS buckets) still stores and reads back; the check is on by default', async () => {
    expect((await parse({ ...creds, key: 'k' })).verifyEtag).toBe(true);
    const { plugin, h } = await start({
      ...creds,
      key: 'noverify',
      size: '1M',
      objectSize: '256K',
      verifyEtag: 'false',
    });
    try {
      const data = randomBytes(300_000);
      await plugin.pwrite!(h, data, 4096, Flag.FUA);
      expect((await read(plugin, h, 4096, data.length)).equals(data)).toBe(true);
    } finally {
      await plugin.unload!();
    }
    expect(await store.head('noverify/0000000000000001')).not.toBeNull();
  });

  it('locks a split disk: a second server is refused, force=true breaks the lock', async () => {
    const params = { ...creds, key: 'locked', size: '1M', objectSize: '64K' };
    const first = await start(params);
    try {
      const msg = await startFails(params);
      expect(msg).toMatch(/in use.*force=true/);
      const second = await start({ ...params, force: 'true' });
      await second.plugin.unload!();
    } finally {
      await first.plugin.unload!();
    }
  });

  it('serves a locked split disk read-only (-r) without touching the lock', async () => {
    const params = { ...creds, key: 'shared', size: '1M', objectSize: '64K' };
    const writer = await start(params);
    try {
      const data = Buffer.alloc(65536, 0x5a);
      await writer.plugin.pwrite!(writer.h, data, 65536, Flag.FUA);
      const lockBefore = await store.get(lockKey('shared'));
      const reader = await start(params, true);
      try {
        expect(await read(reader.plugin, reader.h, 65536, 65536)).toEqual(data);
        expect(await reader.plugin.canWrite!(reader.h)).toBe(false);
      } finally {
        await reader.plugin.unload!();
      }
      // The reader neither replaced nor released the writer's lock.
      expect(await store.get(lockKey('shared'))).toEqual(lockBefore);
    } finally {
      await writer.plugin.unload!();
    }
  });

  it('explains start-up problems in one line', async () => {
    // RGW with STS enabled (for the session-token tests) answers bad credentials with AccessDenied.
    expect(await startFails({ ...creds, key: 'image.raw', secretKey: 'wrong' })).toMatch(
      /denied.*(SignatureDoesNotMatch|AccessDenied).*secret-key/,
    );
    expect(await startFails({ ...creds, key: 'image.raw', accessKey: 'NOSUCHKEY00000000000' })).toMatch(
      /denied.*(InvalidAccessKeyId|AccessDenied).*access-key/,
    );
    expect(await startFails({ ...creds, bucket: 'no-such-bucket-here', key: 'x' })).toMatch(
      /bucket no-such-bucket-here does not exist/,
    );
    expect(await startFails({ ...creds, key: 'no/such/object' })).toMatch(
      /object 'no\/such\/object' not found in bucket/,
    );
    expect(await startFails({ ...creds, key: 'image.raw', endpointUrl: 'http://127.0.0.1:1' })).toMatch(
      /cannot reach http:\/\/127.0.0.1:1 \(ECONNREFUSED\)/,
    );
  });

  it('says when no credentials are found', async () => {
    const saved = { ...process.env };
    try {
      for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
      process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials';
      process.env.AWS_CONFIG_FILE = '/nonexistent/config';
      // Never ask the EC2 metadata address (tests talk to 127.0.0.1 only).
      process.env.AWS_EC2_METADATA_DISABLED = 'true';
      expect(await startFails({ endpointUrl: env.endpoint, bucket: store.bucket, key: 'image.raw' })).toMatch(
        /no AWS credentials found/,
      );
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it('takes credentials from the AWS chain: environment, then a profile in the shared files', async () => {
    const saved = { ...process.env };
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const home = mkdtempSync(`${tmpdir()}/nbdts-aws-`);
    try {
      for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
      process.env.AWS_EC2_METADATA_DISABLED = 'true';
      process.env.AWS_ACCESS_KEY_ID = env.accessKey;
      process.env.AWS_SECRET_ACCESS_KEY = env.secretKey;
      const viaEnv = await start({ endpointUrl: env.endpoint, bucket: store.bucket, key: 'image.raw' });
      expect(await viaEnv.plugin.getSize(viaEnv.h)).toBe(image.length);
      await viaEnv.plugin.unload!();
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
      writeFileSync(
        `${home}/credentials`,
        `[nbdts-test]\naws_access_key_id = ${env.accessKey}\naws_secret_access_key = ${env.secretKey}\n`,
      );
      writeFileSync(`${home}/config`, '[profile nbdts-test]\nregion = us-east-1\n');
      process.env.AWS_SHARED_CREDENTIALS_FILE = `${home}/credentials`;
      process.env.AWS_CONFIG_FILE = `${home}/config`;
      const viaProfile = await start({
        endpointUrl: env.endpoint,
        bucket: store.bucket,
        key: 'image.raw',
        profile: 'nbdts-test',
      });
      expect((await read(viaProfile.plugin, viaProfile.h, 0, 512)).equals(image.subarray(0, 512))).toBe(true);
      await viaProfile.plugin.unload!();
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('reads a public object anonymously', async () => {
    const { PutObjectAclCommand } = await import('@aws-sdk/client-s3');
    await store.client.send(new PutObjectAclCommand({ Bucket: store.bucket, Key: 'image.raw', ACL: 'public-read' }));
    const { plugin, h } = await start({
      endpointUrl: env.endpoint,
      bucket: store.bucket,
      key: 'image.raw',
      anonymous: 'true',
    });
    try {
      expect(await plugin.getSize(h)).toBe(image.length);
      expect((await read(plugin, h, 5000, 5000)).equals(image.subarray(5000, 10000))).toBe(true);
    } finally {
      await plugin.unload!();
    }
  });

  it('rejects bad parameter combinations', async () => {
    const plugin = createS3Plugin();
    const bad = async (p: Record<string, string>) => {
      const c = await parse({ bucket: 'bkt', key: 'k', ...p });
      expect(() => plugin.configComplete!(c)).toThrow(ConfigError);
    };
    await bad({ size: '1M' });
    await bad({ size: '1M', objectSize: '300K' });
    await bad({ accessKey: 'a' });
    await bad({ anonymous: 'true', accessKey: 'a', secretKey: 'b' });
    await expect(parse({ bucket: 'bkt', key: 'k', size: 'lots' })).rejects.toThrow();
    const c = await parse({ bucket: 'ab', key: 'k' });
    expect(() => plugin.configComplete!(c)).toThrow(/3 to 63/);
  });
});
