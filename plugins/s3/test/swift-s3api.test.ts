// A second S3 implementation: OpenStack Swift's s3api middleware. A smoke
// test of the adapter, and of what differs from Ceph RGW.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError, md5Hex } from '@nbdts/objstore';
import { ensureSwift } from '@nbdts/testkit';
import { ConfigError } from '@nbdts/plugin-api';
import type { S3Store } from '../src/s3-store.ts';
import { createS3Plugin, s3Config } from '../src/index.ts';
import { createBucket, removeBucket, storeFor, uniqueBucket, type S3Target } from './helpers.ts';

describe('S3Store against Swift s3api', () => {
  let target: S3Target;
  let store: S3Store;

  beforeAll(async () => {
    const env = await ensureSwift();
    target = { endpoint: env.s3Endpoint, accessKey: env.s3AccessKey, secretKey: env.s3SecretKey };
    store = await createBucket(target, uniqueBucket('s3api'));
  });
  afterAll(async () => {
    if (store) await removeBucket(store);
  });

  it('puts with Content-MD5, gets ranges, heads, lists with pagination, deletes', async () => {
    const data = randomBytes(50_000);
    expect(await store.put('disk/0000000000000000', data, { md5: md5Hex(data) })).toBe(md5Hex(data));
    expect(
      (await store.get('disk/0000000000000000', { offset: 100, length: 1000 }))!.equals(data.subarray(100, 1100)),
    ).toBe(true);
    expect((await store.head('disk/0000000000000000'))!.size).toBe(50_000);
    expect(await store.get('disk/0000000000000001')).toBeNull();
    for (let i = 1; i < 5; i++)
      await store.put(`disk/${i.toString(16).padStart(16, '0')}`, data, { md5: md5Hex(data) });
    const small = storeFor(target, store.bucket, { listPageSize: 2 });
    const keys: string[] = [];
    for await (const o of small.list('disk/')) keys.push(o.key);
    expect(keys).toHaveLength(5);
    await small.close();
    await store.delete('disk/0000000000000004');
    expect(await store.head('disk/0000000000000004')).toBeNull();
  });

  it('rejects a wrong Content-MD5', async () => {
    const err = await store
      .put('bad', Buffer.from('body'), { md5: md5Hex(Buffer.from('other')) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).message).toMatch(/BadDigest|InvalidDigest/);
  });

  // Unlike RGW and AWS, s3api answers 501 NotImplemented: not worth a retry,
  // and the plugin says to use lock=false there.
  it('conditional create is not supported: 501, fatal', async () => {
    const a = Buffer.from('a');
    const err = await store.put('lock', a, { md5: md5Hex(a), ifNoneMatch: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).status).toBe(501);
    expect((err as StoreError).kind).toBe('fatal');
    expect((err as StoreError).message).toMatch(/NotImplemented/);
  });

  it('classifies a missing bucket and bad credentials', async () => {
    const missing = storeFor(target, uniqueBucket('missing'));
    const e1 = await missing.checkBucket('k').catch((e: unknown) => e);
    expect((e1 as StoreError).kind).toBe('missing-container');
    await missing.close();
    const bad = storeFor(target, store.bucket, { secretKey: 'wrong' });
    const e2 = await bad.get('disk/0000000000000000').catch((e: unknown) => e);
    expect((e2 as StoreError).kind).toBe('auth');
    await bad.close();
  });

  it('split mode: the lock needs conditional PUTs, lock=false serves without it', async () => {
    const params = {
      endpointUrl: target.endpoint,
      accessKey: target.accessKey,
      secretKey: target.secretKey,
      bucket: store.bucket,
      key: 'vol',
      size: '1M',
      objectSize: '64K',
    };
    const locked = createS3Plugin();
    const err = await Promise.resolve(locked.getReady!(await s3Config.parseAsync(params), { readonly: false })).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/does not support conditional PUTs.*lock=false/);
    const plugin = createS3Plugin();
    await plugin.getReady!(await s3Config.parseAsync({ ...params, lock: 'false' }), { readonly: false });
    try {
      const h = await plugin.open('', false);
      const data = randomBytes(100_000);
      await plugin.pwrite!(h, data, 5000, 0);
      await plugin.flush!(h, 0);
      const back = Buffer.alloc(100_000);
      await plugin.pread!(h, back, 5000, 0);
      expect(back.equals(data)).toBe(true);
    } finally {
      await plugin.unload!();
    }
  });
});
