// Faults on a real Swift, through the CLI (`nbdts swift ...`) and real clients:
// the Swift endpoint going away and coming back, two writers on one object,
// kill -9, and a second Swift implementation (Ceph RGW's Swift API).
//
// The outage test does not stop the shared test Swift (other test files and
// benchmarks on this machine use it at the same time): nbdts reaches Swift
// through a TCP forwarder owned by this test (auth-url= and storage-url= both
// point at it), and "stopping the proxy" closes the forwarder's listening
// socket and resets every connection through it, which is what a client sees
// when the proxy dies: connection reset, then connection refused.
// NBDTS_SWIFT_FAULTS_REAL_PROXY=1 stops and restarts the real proxy instead
// (scripts/stores/swift.sh stop-proxy / start-proxy): only on a machine where
// nothing else uses the test Swift meanwhile.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureCeph,
  Forwarder,
  nbdinfoJson,
  nbdsh,
  run,
  sha256File,
  startNbdts,
  tempDir,
  type ServerProcess,
} from '@nbdts/testkit';
import { SwiftConnection, SwiftContainerStore, V1Auth } from '../src/client/index.ts';
import { Secret } from '@nbdts/plugin-api';
import { ensureSwift, removeContainer, uniqueName, v1Connection, type SwiftEnv } from './helpers.ts';

const SWIFT_SH = fileURLToPath(new URL('../../../scripts/stores/swift.sh', import.meta.url));
const REAL_PROXY = process.env.NBDTS_SWIFT_FAULTS_REAL_PROXY === '1';

const MiB = 1024 * 1024;
const dir = tempDir('nbdts-swift-faults-');
let env: SwiftEnv;
const servers = new Set<ServerProcess>();
const cleanup: SwiftContainerStore[] = [];

beforeAll(async () => {
  env = await ensureSwift();
});

afterAll(async () => {
  for (const s of servers) await s.kill9();
  for (const s of cleanup) await removeContainer(s).catch(() => undefined);
  dir.cleanup();
});

/** `nbdts swift` on a private Unix socket; the key travels in the environment. */
async function serve(
  params: string[],
  key = env.key,
  auth: string[] = [`auth-url=${env.authUrl}`, `username=${env.user}`],
): Promise<ServerProcess> {
  const srv = await startNbdts(['swift', ...auth, 'password=env:NBDTS_TEST_SWIFT_KEY', ...params], {
    env: { NBDTS_TEST_SWIFT_KEY: key },
    startTimeoutMs: 60_000,
  });
  servers.add(srv);
  return srv;
}

async function stop(srv: ServerProcess): Promise<number | null> {
  const code = await srv.stop('SIGTERM', 60_000);
  servers.delete(srv);
  return code;
}

function track(store: SwiftContainerStore): SwiftContainerStore {
  cleanup.push(store);
  return store;
}

/** nbdsh that must succeed; returns stdout. */
async function py(uri: string, script: string, timeoutMs = 90_000): Promise<string> {
  const r = await nbdsh(script, uri, { timeoutMs });
  if (r.code !== 0) throw new Error(`nbdsh failed (code ${r.code}, timed out ${r.timedOut}):\n${r.stderr}\n${script}`);
  return r.stdout;
}

/** The test Swift made unreachable and reachable again: a Forwarder (from @nbdts/testkit) or the real proxy. */
interface Outage {
  base: string;
  up(): Promise<void>;
  down(): Promise<void>;
}

/** The real proxy, stopped and started by PID (scripts/stores/swift.sh stop-proxy / start-proxy). */
class RealProxy implements Outage {
  readonly base: string;

  constructor(base: string) {
    this.base = base;
  }
  async up(): Promise<void> {
    const r = await run('bash', [SWIFT_SH, 'start-proxy'], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`swift.sh start-proxy: ${r.stderr}`);
  }
  async down(): Promise<void> {
    const r = await run('bash', [SWIFT_SH, 'stop-proxy'], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`swift.sh stop-proxy: ${r.stderr}`);
  }
}

describe('nbdts swift under faults', { timeout: 110_000 }, () => {
  it('keeps serving while Swift is down, then stores everything once it is back', async () => {
    const name = uniqueName('fault-outage');
    track(new SwiftContainerStore(v1Connection(env), name));
    const fwd: Outage = REAL_PROXY
      ? new RealProxy(new URL(env.authUrl).origin)
      : new Forwarder(Number(new URL(env.authUrl).port));
    await fwd.up();
    // The account URL tempauth hands out, re-pointed at the forwarder.
    const account = new URL((await new V1Auth(env.authUrl, env.user, new Secret(env.key)).authenticate()).storageUrl);
    const base = fwd.base;
    account.port = new URL(base).port;
    let srv = await serve(
      [`container=${name}`, 'size=4M', 'object-size=256K', `storage-url=${account.href}`],
      env.key,
      [`auth-url=${base}/auth/v1.0`, `username=${env.user}`],
    );
    try {
      // Flushed before the outage.
      await py(srv.uri, 'h.pwrite(b"\\xa1" * 1048576, 0); h.flush()');

      await fwd.down();
      const refused = await fetch(`${base}/info`).then(
        () => 'answered',
        () => 'refused',
      );
      expect(refused).toBe('refused');
      // During the outage: a write (lands in the cache), a flush and a read of an object never
      // cached (both need Swift). Each either waits for Swift (retries) or fails with EIO.
      const during = nbdsh(
        [
          'import errno',
          'def attempt(label, fn):',
          '    try:',
          '        fn()',
          '        print(label, "ok")',
          '    except nbd.Error as e:',
          '        print(label, errno.errorcode.get(e.errno, e.errno))',
          'attempt("write", lambda: h.pwrite(b"\\xb2" * 524288, 2097152))',
          'attempt("flush", lambda: h.flush())',
          'attempt("read", lambda: h.pread(65536, 3145728 + 1000))',
        ].join('\n'),
        srv.uri,
        { timeoutMs: 100_000 },
      );
      // The server itself stays up: a new client connects and negotiates.
      await new Promise((r) => setTimeout(r, 1500));
      const info = await nbdinfoJson(srv.uri);
      expect(info.exports[0]!['export-size']).toBe(4 * MiB);
      await new Promise((r) => setTimeout(r, 3000));
      await fwd.up();

      const r = await during;
      expect(r.code, r.stderr).toBe(0);
      const outcome = Object.fromEntries(
        r.stdout
          .trim()
          .split('\n')
          .map((l) => l.split(' ') as [string, string]),
      );
      expect(outcome.write).toBe('ok'); // write-back: the cache takes it
      expect(['ok', 'EIO']).toContain(outcome.flush);
      expect(['ok', 'EIO']).toContain(outcome.read);
      // Back: a flush succeeds (whatever failed during the outage is still dirty and stored now).
      await py(srv.uri, 'h.flush(); assert h.pread(65536, 3145728 + 1000) == bytes(65536)');
      expect(await stop(srv)).toBe(0);
      expect(srv.stderr()).not.toMatch(/uncaught|unhandled/i);
    } finally {
      if (REAL_PROXY) await fwd.up();
      else await fwd.down();
    }

    // A new server straight to Swift: both the data flushed before and the data written during the outage.
    srv = await serve([`container=${name}`]);
    await py(
      srv.uri,
      [
        'assert h.pread(1048576, 0) == b"\\xa1" * 1048576, "data from before the outage"',
        'assert h.pread(524288, 2097152) == b"\\xb2" * 524288, "data written during the outage"',
        'assert h.pread(524288, 1048576) == bytes(524288)',
      ].join('\n'),
    );
    expect(await stop(srv)).toBe(0);
  });

  it('two connections writing different halves of the same objects: both updates survive', async () => {
    const name = uniqueName('fault-conc');
    track(new SwiftContainerStore(v1Connection(env), name));
    const objects = 32;
    // Every object starts with data, and the second server starts cold: each half-object
    // write must read-modify-write, with both connections racing for the same objects.
    let srv = await serve([`container=${name}`, `size=${objects * 64}K`, 'object-size=64K']);
    await py(srv.uri, `h.pwrite(b"\\x33" * ${objects * 65536}, 0); h.flush()`);
    expect(await stop(srv)).toBe(0);

    srv = await serve([`container=${name}`]);
    await py(
      srv.uri,
      [
        'h2 = nbd.NBD()',
        `h2.connect_uri(${JSON.stringify(srv.uri)})`,
        `n = ${objects}`,
        'b1 = nbd.Buffer.from_bytearray(bytearray(b"\\x11" * 32768))',
        'b2 = nbd.Buffer.from_bytearray(bytearray(b"\\x22" * 32768))',
        'cookies = []',
        'for i in range(n):',
        '    cookies.append((h, h.aio_pwrite(b1, i * 65536)))',
        '    cookies.append((h2, h2.aio_pwrite(b2, i * 65536 + 32768)))',
        // Drive both connections at once, so their read-modify-writes of one object overlap.
        'while cookies:',
        '    for x in {id(y): y for y, _ in cookies}.values():',
        '        x.poll(1)',
        '    cookies = [(x, c) for x, c in cookies if not x.aio_command_completed(c)]', // raises if a write failed
        'h2.flush()', // multi-conn: a flush on either connection stores both
        'h2.shutdown()',
      ].join('\n'),
    );
    await srv.kill9(); // no shutdown flush: only what the flush stored counts
    servers.delete(srv);

    srv = await serve([`container=${name}`, 'force=true']);
    const out = await py(
      srv.uri,
      [
        `bad = [i for i in range(${objects}) if h.pread(65536, i * 65536) != b"\\x11" * 32768 + b"\\x22" * 32768]`,
        'print("bad", bad)',
      ].join('\n'),
    );
    expect(out.trim()).toBe('bad []');
    expect(await stop(srv)).toBe(0);
  });

  it('kill -9 after write + flush: restart with force=true, the data is there', async () => {
    const name = uniqueName('fault-kill');
    track(new SwiftContainerStore(v1Connection(env), name));
    const image = dir.join('kill.img');
    writeFileSync(image, randomBytes(3 * MiB + 12345));
    let srv = await serve([`container=${name}`, 'size=4M', 'object-size=256K']);
    const copy = await run('nbdcopy', ['--flush', image, srv.uri], { timeoutMs: 90_000 });
    expect(copy.code, copy.stderr).toBe(0);
    await srv.kill9();
    servers.delete(srv);

    const refused = await serve([`container=${name}`]).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/in use by nbdts\/.*force=true/);
    srv = await serve([`container=${name}`, 'force=true']);
    expect(srv.stderr()).toMatch(/breaking the lock/);
    const out = dir.join('kill.out');
    const back = await run('nbdcopy', [srv.uri, out], { timeoutMs: 90_000 });
    expect(back.code, back.stderr).toBe(0);
    await run('truncate', ['-s', String(3 * MiB + 12345), out]);
    expect(await sha256File(out)).toBe(await sha256File(image));
    expect(await stop(srv)).toBe(0);
  });

  it("round-trips with nbdcopy on Ceph RGW's Swift API (a second implementation)", async () => {
    const ceph = await ensureCeph();
    const name = uniqueName('fault-rgw');
    track(
      new SwiftContainerStore(
        new SwiftConnection(new V1Auth(ceph.swiftAuthUrl, ceph.swiftUser, new Secret(ceph.swiftKey)), {
          timeoutMs: 15_000,
        }),
        name,
      ),
    );
    const rgw = [`auth-url=${ceph.swiftAuthUrl}`, `username=${ceph.swiftUser}`];
    const image = dir.join('rgw.img');
    const data = randomBytes(4 * MiB);
    data.fill(0, MiB, 2 * MiB);
    writeFileSync(image, data);
    let srv = await serve([`container=${name}`, 'size=4M', 'object-size=128K'], ceph.swiftKey, rgw);
    const copy = await run('nbdcopy', ['--flush', image, srv.uri], { timeoutMs: 90_000 });
    expect(copy.code, copy.stderr).toBe(0);
    expect(await stop(srv)).toBe(0);

    srv = await serve([`container=${name}`], ceph.swiftKey, rgw);
    const out = dir.join('rgw.out');
    const back = await run('nbdcopy', [srv.uri, out], { timeoutMs: 90_000 });
    expect(back.code, back.stderr).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(image));
    expect(await stop(srv)).toBe(0);
  }, 180_000);
});
