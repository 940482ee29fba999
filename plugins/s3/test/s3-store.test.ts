import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError, md5Hex } from '@nbdts/objstore';
import { ensureCeph, type CephEnv } from '@nbdts/testkit';
import type { S3Store } from '../src/s3-store.ts';
import { createBucket, removeBucket, storeFor, uniqueBucket } from './helpers.ts';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function failure(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error('expected a failure');
}

describe('S3Store against Ceph RGW', () => {
  let env: CephEnv;
  let store: S3Store;
  const data = randomBytes(100_000);

  beforeAll(async () => {
    env = await ensureCeph();
    store = await createBucket(env, uniqueBucket('adapter'));
    await store.put('obj', data, { md5: md5Hex(data) });
  });
  afterAll(async () => {
    if (store) await removeBucket(store);
  });

  it('puts and gets a whole object, ETag = MD5', async () => {
    const body = randomBytes(4096);
    const etag = await store.put('whole', body, { md5: md5Hex(body) });
    expect(etag).toBe(md5Hex(body));
    expect((await store.get('whole'))!.equals(body)).toBe(true);
  });

  it('gets byte ranges, including a range cut short by the end of the object', async () => {
    expect((await store.get('obj', { offset: 1000, length: 5000 }))!.equals(data.subarray(1000, 6000))).toBe(true);
    expect((await store.get('obj', { offset: 0, length: 1 }))!.equals(data.subarray(0, 1))).toBe(true);
    // Past the end: the store sends what there is; the block layer checks lengths.
    expect((await store.get('obj', { offset: 99_000, length: 5000 }))!.length).toBe(1000);
    expect((await store.get('obj', { offset: 200_000, length: 10 }))!.length).toBe(0);
  });

  it('returns null for a missing object (get and head) and deletes idempotently', async () => {
    expect(await store.get('nope')).toBeNull();
    expect(await store.get('nope', { offset: 0, length: 10 })).toBeNull();
    expect(await store.head('nope')).toBeNull();
    await store.delete('nope');
  });

  it('heads size, ETag and metadata', async () => {
    const body = Buffer.from('meta');
    await store.put('with-meta', body, { md5: md5Hex(body), metadata: { 'nbdts-owner': 'me' } });
    const h = await store.head('with-meta');
    expect(h).toMatchObject({ key: 'with-meta', size: 4, etag: md5Hex(body), metadata: { 'nbdts-owner': 'me' } });
    await store.delete('with-meta');
    expect(await store.head('with-meta')).toBeNull();
  });

  it('rejects a PUT whose Content-MD5 does not match the body', async () => {
    const body = Buffer.from('the real body');
    const wrong = createHash('md5').update('something else').digest('hex');
    const err = await failure(store.put('bad-md5', body, { md5: wrong }));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/BadDigest/);
    // A damaged body in transit: worth a retry.
    expect(err.kind).toBe('transient');
    expect(await store.head('bad-md5')).toBeNull();
  });

  it('creates only if absent with ifNoneMatch (412 -> precondition)', async () => {
    const a = Buffer.from('first');
    const b = Buffer.from('second');
    await store.put('lock', a, { md5: md5Hex(a), ifNoneMatch: true });
    const err = await failure(store.put('lock', b, { md5: md5Hex(b), ifNoneMatch: true }));
    expect(err.kind).toBe('precondition');
    expect(err.status).toBe(412);
    expect((await store.get('lock'))!.toString()).toBe('first');
  });

  it('lists with pagination, in key order, only under the prefix', async () => {
    const small = storeFor(env, store.bucket, { listPageSize: 3 });
    const keys = Array.from({ length: 10 }, (_, i) => `list/${i.toString(16).padStart(16, '0')}`);
    await Promise.all(keys.map((k) => store.put(k, Buffer.from(k), { md5: md5Hex(Buffer.from(k)) })));
    await store.put('listx', Buffer.from('x'), { md5: md5Hex(Buffer.from('x')) });
    const listed = await collect(small.list('list/'));
    expect(listed.map((o) => o.key)).toEqual(keys);
    expect(listed[0]).toMatchObject({ size: keys[0]!.length, etag: md5Hex(Buffer.from(keys[0]!)) });
    expect(await collect(small.list('nothing-here/'))).toEqual([]);
    await small.close();
  });

  it('classifies a missing bucket', async () => {
    const missing = storeFor(env, uniqueBucket('missing'));
    expect((await failure(missing.put('k', data, { md5: md5Hex(data) }))).kind).toBe('missing-container');
    expect((await failure(collect(missing.list('')))).kind).toBe('missing-container');
    expect((await failure(missing.checkBucket('k'))).kind).toBe('missing-container');
    await missing.close();
  });

  it('classifies bad credentials as auth', async () => {
    const wrongSecret = storeFor(env, store.bucket, { secretKey: 'not-the-secret' });
    const e1 = await failure(wrongSecret.get('obj'));
    expect(e1.kind).toBe('auth');
    // RGW with STS enabled (for the session-token tests) answers a wrong secret with AccessDenied.
    expect(e1.message).toMatch(/SignatureDoesNotMatch|AccessDenied/);
    expect(e1.message).not.toContain(env.secretKey);
    expect((await failure(wrongSecret.head('obj'))).kind).toBe('auth');
    const unknownKey = storeFor(env, store.bucket, { accessKey: 'NOSUCHKEY0000000000' });
    const e2 = await failure(unknownKey.checkBucket('obj'));
    expect(e2.kind).toBe('auth');
    expect(e2.message).toMatch(/InvalidAccessKeyId|AccessDenied/);
    await wrongSecret.close();
    await unknownKey.close();
  });

  it('classifies an unreachable endpoint as transient', async () => {
    const down = storeFor({ ...env, endpoint: 'http://127.0.0.1:1' }, store.bucket);
    const err = await failure(down.get('obj'));
    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/ECONNREFUSED/);
    await down.close();
  });

  it('aborts a request through the signal', async () => {
    const ac = new AbortController();
    const p = store.get('obj', undefined, ac.signal);
    ac.abort();
    const err = await failure(p);
    expect(err.kind).toBe('transient');
  });

  it('uploads a multipart object', async () => {
    const part1 = randomBytes(5 * 1024 * 1024);
    const part2 = randomBytes(1000);
    const up = await store.createMultipart('multi');
    await up.uploadPart(1, part1, md5Hex(part1));
    await up.uploadPart(2, part2, md5Hex(part2));
    await up.complete();
    const h = await store.head('multi');
    expect(h!.size).toBe(part1.length + part2.length);
    expect(
      (await store.get('multi', { offset: part1.length - 10, length: 20 }))!.equals(
        Buffer.concat([part1.subarray(-10), part2.subarray(0, 10)]),
      ),
    ).toBe(true);
  });
});
