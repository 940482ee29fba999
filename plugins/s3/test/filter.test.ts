// A filter that wraps only pread applies to the s3 plugin too (its reads are
// served from its own cache buffers through `read`), on a split disk in Ceph RGW.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureCeph, nbdshOk, startNbdts, type CephEnv, type ServerProcess } from '@nbdts/testkit';
import type { S3Store } from '../src/s3-store.ts';
import { createBucket, removeBucket, uniqueBucket } from './helpers.ts';

const UPPER = fileURLToPath(new URL('../../../packages/e2e/test/fixtures/upper-filter.ts', import.meta.url));

let env: CephEnv;
let store: S3Store;
let srv: ServerProcess | undefined;

beforeAll(async () => {
  env = await ensureCeph();
  store = await createBucket(env, uniqueBucket('filter'));
});
afterAll(async () => {
  await srv?.stop();
  if (store) await removeBucket(store);
});

it('a filter that wraps only pread sees every read of an s3 split disk', async () => {
  srv = await startNbdts(
    [
      `--filter=${UPPER}`,
      's3',
      `endpoint-url=${env.endpoint}`,
      'access-key=env:NBDTS_TEST_S3_AK',
      'secret-key=env:NBDTS_TEST_S3_SK',
      `bucket=${store.bucket}`,
      'key=upper',
      'size=4M',
      'object-size=1M',
    ],
    { env: { NBDTS_TEST_S3_AK: env.accessKey, NBDTS_TEST_S3_SK: env.secretKey } },
  );
  const out = await nbdshOk(
    `
h.pwrite(b"object store", (1 << 20) - 6)
h.flush()
print(bytes(h.pread(12, (1 << 20) - 6)).decode())
`,
    srv.uri,
  );
  expect(out.trim()).toBe('OBJECT STORE');
  // Written as given: the filter changes reads only.
  const second = await store.get('upper/0000000000000001');
  expect(second?.subarray(0, 6).toString()).toBe(' store');
});
