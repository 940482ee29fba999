// The S3 endpoint (Ceph RGW) going away mid-run and coming back, through the
// CLI (`nbdts s3 ...`) and real clients (nbdsh, nbdinfo).
//
// The real RGW is never stopped (other test files use it at the same time):
// nbdts reaches it through a TCP forwarder owned by this test (endpoint-url=
// points at it), and "stopping RGW" closes the forwarder's listening socket and
// resets every connection through it: connection reset, then connection refused.
import { createHash, randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureCeph,
  Forwarder,
  nbdinfoJson,
  nbdsh,
  startNbdts,
  type CephEnv,
  type ServerProcess,
} from '@nbdts/testkit';
import type { S3Store } from '../src/s3-store.ts';
import { createBucket, removeBucket, uniqueBucket } from './helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const OUTAGE_MS = 5000;

let env: CephEnv;
let store: S3Store;
let keyEnv: Record<string, string>;
const servers = new Set<ServerProcess>();
const forwarders = new Set<Forwarder>();

beforeAll(async () => {
  env = await ensureCeph();
  store = await createBucket(env, uniqueBucket('faults'));
  keyEnv = { NBDTS_TEST_S3_AK: env.accessKey, NBDTS_TEST_S3_SK: env.secretKey };
}, 200_000);

afterAll(async () => {
  for (const s of servers) await s.kill9();
  for (const f of forwarders) await f.down();
  if (store) await removeBucket(store);
});

/** `nbdts s3` on a private Unix socket, keys in the environment, RGW at `endpoint`. */
async function serve(endpoint: string, params: string[]): Promise<ServerProcess> {
  const srv = await startNbdts(
    [
      's3',
      `endpoint-url=${endpoint}`,
      'access-key=env:NBDTS_TEST_S3_AK',
      'secret-key=env:NBDTS_TEST_S3_SK',
      `bucket=${store.bucket}`,
      ...params,
    ],
    { env: keyEnv, startTimeoutMs: 60_000 },
  );
  servers.add(srv);
  return srv;
}

async function stop(srv: ServerProcess): Promise<number | null> {
  const code = await srv.stop('SIGTERM', 30_000);
  servers.delete(srv);
  return code;
}

async function forwarder(): Promise<Forwarder> {
  const fwd = new Forwarder(Number(new URL(env.endpoint).port));
  forwarders.add(fwd);
  await fwd.up();
  return fwd;
}

/** nbdsh that must succeed; returns stdout. */
async function py(uri: string, script: string, timeoutMs = 60_000): Promise<string> {
  const r = await nbdsh(script, uri, { timeoutMs });
  if (r.code !== 0) throw new Error(`nbdsh failed (code ${r.code}, timed out ${r.timedOut}):\n${r.stderr}\n${script}`);
  return r.stdout;
}

async function put(key: string, body: Buffer): Promise<void> {
  await store.client.send(new PutObjectCommand({ Bucket: store.bucket, Key: key, Body: body }));
}

/**
 * Python: attempt(label, fn, want=None) runs fn and prints "label OUTCOME MS": OUTCOME is ok, WRONG
 * (fn returned data other than want) or the errno name; MS is when it finished (epoch ms).
 */
const ATTEMPT = [
  'import errno, hashlib, time',
  'def attempt(label, fn, want=None):',
  '    try:',
  '        r = fn()',
  '        out = "ok" if want is None or hashlib.sha256(r).hexdigest() == want else "WRONG"',
  '    except nbd.Error as e:',
  '        out = errno.errorcode.get(e.errno, str(e.errno))',
  '    print(label, out, int(time.time() * 1000), flush=True)',
];

interface Outcome {
  result: string;
  at: number;
}
function outcomes(stdout: string): Record<string, Outcome> {
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => {
        const [label, result, at] = l.split(' ');
        return [label!, { result: result!, at: Number(at) }];
      }),
  );
}

/** Needs the store: either failed with EIO, or succeeded (with the right data) only once the store was back. */
function expectWaitedOrEio(o: Outcome | undefined, backAt: number, what: string): void {
  expect(o, what).toBeDefined();
  expect(['ok', 'EIO'], `${what}: ${o!.result}`).toContain(o!.result);
  if (o!.result === 'ok') expect(o!.at, `${what} succeeded while RGW was unreachable`).toBeGreaterThanOrEqual(backAt);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('nbdts s3: RGW stopped mid-run and restarted', { timeout: 60_000 }, () => {
  it('split disk: keeps serving from the cache, stores everything once RGW is back', async () => {
    const key = 'vol';
    // Object 12 (3 MiB) exists before the server starts: reading it needs RGW.
    const stored = randomBytes(256 * KiB);
    await put(`${key}/${(12).toString(16).padStart(16, '0')}`, stored);
    const fwd = await forwarder();
    const geometry = ['size=8M', 'object-size=256K'];
    let srv = await serve(fwd.base, [`key=${key}`, ...geometry]);
    let backAt: number;
    try {
      // A: flushed before the outage (objects 0-3, now cached).
      await py(srv.uri, 'h.pwrite(b"\\xa1" * 1048576, 0); h.flush()');

      await fwd.down();
      const refused = await fetch(fwd.base).then(
        () => 'answered',
        () => 'refused',
      );
      expect(refused).toBe('refused');
      // Writes land in the cache: B (whole objects 8-9, no read needed) and a patch inside cached object 0.
      // Then a flush (needs RGW) on one connection and a read of the uncached object 12 (needs RGW) on another.
      const writeFlush = nbdsh(
        [
          ...ATTEMPT,
          'attempt("write", lambda: h.pwrite(b"\\xb2" * 524288, 2097152))',
          'attempt("patch", lambda: h.pwrite(b"\\xd4" * 4096, 102400))',
          'attempt("flush", lambda: h.flush())',
        ].join('\n'),
        srv.uri,
        { timeoutMs: 50_000 },
      );
      const read = nbdsh(
        [...ATTEMPT, `attempt("read", lambda: h.pread(262144, 3145728), "${sha256(stored)}")`].join('\n'),
        srv.uri,
        { timeoutMs: 50_000 },
      );
      // The server itself stays up: a new client connects and negotiates.
      await new Promise((r) => setTimeout(r, 1500));
      const info = await nbdinfoJson(srv.uri);
      expect(info.exports[0]!['export-size']).toBe(8 * MiB);
      await new Promise((r) => setTimeout(r, OUTAGE_MS - 1500));
      backAt = Date.now();
      await fwd.up();

      const wf = await writeFlush;
      expect(wf.code, wf.stderr).toBe(0);
      const rd = await read;
      expect(rd.code, rd.stderr).toBe(0);
      const o = { ...outcomes(wf.stdout), ...outcomes(rd.stdout) };
      expect(o.write?.result, 'write-back: the cache takes a write of whole objects').toBe('ok');
      expect(o.patch?.result, 'write-back: the cache takes a write into a cached object').toBe('ok');
      expect(o.write!.at, 'a write into the cache does not wait for RGW').toBeLessThan(backAt);
      expectWaitedOrEio(o.flush, backAt, 'flush during the outage');
      expectWaitedOrEio(o.read, backAt, 'uncached read during the outage');

      // Back: a flush succeeds (whatever failed is still dirty and stored now), the object reads right.
      await py(
        srv.uri,
        `h.flush(); import hashlib; assert hashlib.sha256(h.pread(262144, 3145728)).hexdigest() == "${sha256(stored)}"`,
      );
      expect(await stop(srv)).toBe(0);
      expect(srv.stderr()).not.toMatch(/uncaught|unhandled/i);
    } finally {
      await fwd.down();
    }

    // A new server straight to RGW (no force=true: the first released its lock) reads everything back.
    srv = await serve(env.endpoint, [`key=${key}`, ...geometry]);
    await py(
      srv.uri,
      [
        'import hashlib',
        'a = bytearray(b"\\xa1" * 1048576); a[102400:106496] = b"\\xd4" * 4096',
        'assert h.pread(1048576, 0) == bytes(a), "data from before the outage, patched during it"',
        'assert h.pread(524288, 2097152) == b"\\xb2" * 524288, "data written during the outage"',
        `assert hashlib.sha256(h.pread(262144, 3145728)).hexdigest() == "${sha256(stored)}", "object stored before"`,
        'assert h.pread(1048576, 1048576) == bytes(1048576)',
        'assert h.pread(4194304, 4194304) == bytes(4194304)',
      ].join('\n'),
    );
    expect(await stop(srv)).toBe(0);
  });

  it('single object: uncached reads wait or fail with EIO during the outage, succeed after', async () => {
    const image = randomBytes(4 * MiB);
    await put('img', image);
    const fwd = await forwarder();
    // Single-object mode is read-only; readahead=0 so the range read during the outage is not cached already.
    const srv = await serve(fwd.base, ['key=img', 'chunk-size=256K', 'readahead=0']);
    let backAt: number;
    try {
      const chunk = (off: number): string => sha256(image.subarray(off, off + 256 * KiB));
      await py(srv.uri, `import hashlib; assert hashlib.sha256(h.pread(262144, 0)).hexdigest() == "${chunk(0)}"`);

      await fwd.down();
      const during = nbdsh(
        [
          ...ATTEMPT,
          `attempt("cached", lambda: h.pread(262144, 0), "${chunk(0)}")`,
          `attempt("read", lambda: h.pread(262144, 2097152), "${chunk(2 * MiB)}")`,
        ].join('\n'),
        srv.uri,
        { timeoutMs: 50_000 },
      );
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      backAt = Date.now();
      await fwd.up();

      const r = await during;
      expect(r.code, r.stderr).toBe(0);
      const o = outcomes(r.stdout);
      expect(o.cached?.result, 'a cached range is served while RGW is unreachable').toBe('ok');
      expectWaitedOrEio(o.read, backAt, 'uncached read during the outage');
      await py(
        srv.uri,
        [
          'import hashlib',
          `assert hashlib.sha256(h.pread(262144, 2097152)).hexdigest() == "${chunk(2 * MiB)}"`,
          `assert hashlib.sha256(h.pread(262144, 3145728)).hexdigest() == "${chunk(3 * MiB)}"`,
        ].join('\n'),
      );
      expect(await stop(srv)).toBe(0);
      expect(srv.stderr()).not.toMatch(/uncaught|unhandled/i);
    } finally {
      await fwd.down();
    }
  });
});
