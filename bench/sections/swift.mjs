// The swift plugin against the local test Swift (scripts/stores/swift.sh):
// nbdts swift vs the raw store (plain fetch PUT/GET of the same objects, N in
// flight, no NBD at all) vs pkgcloud doing the same GETs.
//
//   node bench/run.mjs --sections swift --size 256M            # 3 rounds
//   node bench/run.mjs --sections swift --size 256M --only read
//
// Like the s3 section it runs its own rounds (section.run): each measurement
// gets a freshly started server, so the read-back is cold (the cache would
// otherwise serve it from memory). Start-up is not timed; the nbdcopy is.
//
// pkgcloud is not a dependency of the product: the section installs it into
// bench/node_modules (npm install --prefix bench) on first use, and skips it
// with a printed note when that fails (no registry, say).
//
// Knobs (environment):
//   NBDTS_BENCH_SWIFT_OBJECT_SIZE  object size of the disk and of the raw objects (default 1M)
//   NBDTS_BENCH_SWIFT_ARGS         extra `nbdts swift` parameters, e.g. "connections=32";
//                                  the raw and pkgcloud clients follow connections=.
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, measured, median, makeTempDir, parseSize, pool, repoRoot, run, startServer } from '../lib.mjs';

const MiB = 1 << 20;
const human = (n) => (n % (1 << 30) === 0 ? `${n / (1 << 30)} GiB` : n >= MiB ? `${n / MiB} MiB` : `${n / 1024} KiB`);
const benchDir = join(repoRoot, 'bench');

/** The test Swift's credentials (starting it if needed) and the PIDs of its proxy and object server. */
async function swiftStore() {
  const script = join(repoRoot, 'scripts/stores/swift.sh');
  const { stdout } = await run('bash', [script, 'start'], { timeoutMs: 180_000 });
  const env = Object.fromEntries([...stdout.matchAll(/(NBDTS_SWIFT_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  const dir = process.env.NBDTS_SWIFT_DIR ?? '/tmp/nbdts-swift';
  const pid = (name) => Number(readFileSync(join(dir, 'run', `${name}.pid`), 'utf8'));
  return { env, pids: { proxy: pid('proxy'), object: pid('object') } };
}

/** pkgcloud from bench/node_modules, installed there on first use; null (with a note) when it cannot be. */
async function loadPkgcloud(log) {
  const req = createRequire(join(benchDir, 'package.json'));
  try {
    return req('pkgcloud');
  } catch {
    /* not installed yet */
  }
  try {
    if (!existsSync(join(benchDir, 'package.json'))) {
      writeFileSync(
        join(benchDir, 'package.json'),
        `${JSON.stringify(
          {
            name: 'nbdts-bench-deps',
            private: true,
            description: 'Benchmark-only dependencies (not part of the product)',
          },
          null,
          2,
        )}\n`,
      );
    }
    log('  swift: installing pkgcloud into bench/node_modules (once) ...');
    await run('npm', ['install', '--prefix', benchDir, '--no-audit', '--no-fund', '--no-save', 'pkgcloud@^2.2.0'], {
      timeoutMs: 300_000,
    });
    return req('pkgcloud');
  } catch (err) {
    log(
      `  swift: NOTE: pkgcloud could not be installed (${String(err.message).split('\n')[0]}); its figures are skipped`,
    );
    return null;
  }
}

/** @param {{ sizeBytes: number }} opts */
export default function swiftSection({ sizeBytes = 256 * MiB } = {}) {
  const objectSize = parseSize(process.env.NBDTS_BENCH_SWIFT_OBJECT_SIZE ?? '1M');
  const extra = (process.env.NBDTS_BENCH_SWIFT_ARGS ?? '').split(/\s+/).filter(Boolean);
  const conn = extra.find((x) => x.startsWith('connections='));
  const parallel = Number(conn ? conn.slice('connections='.length) : 16);
  if (sizeBytes % objectSize !== 0)
    throw new Error(`--size must be a multiple of the object size ${human(objectSize)}`);
  const objects = sizeBytes / objectSize;
  const prefix = `nbdts-bench-${process.pid}-${Date.now().toString(36)}`;
  const keyOf = (i) => `disk.part/${String(i).padStart(8, '0')}`;
  let store; // { env, pids }
  let src; // { dir, file, data }
  let auth; // { url, token }
  let pkgcloud; // module or null
  const containers = new Set();

  const creds = () => ({ NBDTS_BENCH_SWIFT_KEY: store.env.NBDTS_SWIFT_KEY });
  const nbdtsArgs = (container, more) => [
    'swift',
    `container=${container}`,
    `auth-url=${store.env.NBDTS_SWIFT_AUTH_URL}`,
    `username=${store.env.NBDTS_SWIFT_USER}`,
    'password=env:NBDTS_BENCH_SWIFT_KEY',
    ...more,
    ...extra,
  ];

  async function authenticate() {
    const res = await fetch(store.env.NBDTS_SWIFT_AUTH_URL, {
      headers: { 'X-Auth-User': store.env.NBDTS_SWIFT_USER, 'X-Auth-Key': store.env.NBDTS_SWIFT_KEY },
    });
    if (!res.ok) throw new Error(`swift auth: HTTP ${res.status}`);
    return { url: res.headers.get('x-storage-url'), token: res.headers.get('x-auth-token') };
  }

  async function swift(method, path, body) {
    const res = await fetch(`${auth.url}/${path}`, { method, body, headers: { 'X-Auth-Token': auth.token } });
    const buf = Buffer.from(await res.arrayBuffer());
    if (!res.ok && !(method === 'DELETE' && res.status === 404))
      throw new Error(`${method} ${path}: HTTP ${res.status}`);
    return buf;
  }

  async function deleteContainer(name) {
    await run(
      process.execPath,
      [
        join(repoRoot, 'plugins/swift/bin/nbdts-swift.js'),
        '-a',
        store.env.NBDTS_SWIFT_AUTH_URL,
        '-u',
        store.env.NBDTS_SWIFT_USER,
        '-p',
        'env:NBDTS_BENCH_SWIFT_KEY',
        '-q',
        'delete',
        name,
        '--force',
      ],
      { env: creds(), cwd: repoRoot },
    ).catch((err) => console.error(`swift: could not delete ${name}: ${err.message.split('\n')[0]}`));
    containers.delete(name);
  }

  /** Start a server, time one nbdcopy on it, stop it. */
  async function throughServer(args, nbdcopyArgs) {
    const srv = await startServer('nbdts', args, { env: creds(), startTimeoutMs: 60_000 });
    try {
      const m = await measured({ server: srv.pid, ...store.pids }, () => run('nbdcopy', nbdcopyArgs(srv.uri)));
      return { mibs: sizeBytes / MiB / m.seconds, cores: m.cores };
    } finally {
      await srv.stop();
    }
  }

  async function direct(fn) {
    const m = await measured({ client: 'self', ...store.pids }, fn);
    return { mibs: sizeBytes / MiB / m.seconds, cores: m.cores };
  }

  function pkgcloudGetAll(container) {
    const client = pkgcloud.storage.createClient({
      provider: 'openstack',
      version: 1,
      username: store.env.NBDTS_SWIFT_USER,
      password: store.env.NBDTS_SWIFT_KEY,
      authUrl: new URL(store.env.NBDTS_SWIFT_AUTH_URL).origin,
    });
    return pool(
      parallel,
      objects,
      (i) =>
        new Promise((resolve, reject) => {
          let got = 0;
          const s = client.download({ container, remote: keyOf(i) });
          s.on('data', (c) => {
            got += c.length;
          });
          s.on('error', reject);
          s.on('end', () =>
            got === objectSize ? resolve() : reject(new Error(`pkgcloud: ${keyOf(i)}: ${got} bytes`)),
          );
        }),
    );
  }

  const write = `write ${human(sizeBytes)}, ${human(objectSize)} objects`;
  const read = `read ${human(sizeBytes)} cold, ${human(objectSize)} objects`;

  return {
    name: 'swift',
    tools: [
      ['nbdcopy', 'libnbd-bin'],
      ['bash', 'bash'],
    ],

    async setup() {
      store = await swiftStore();
      auth = await authenticate();
      const dir = makeTempDir();
      const file = existsSync('/dev/shm') ? `/dev/shm/nbdts-bench-swift-${process.pid}.img` : dir.join('src.img');
      src = { dir, file };
      await run('sh', ['-c', `head -c ${sizeBytes} /dev/urandom > '${file}'`]);
      src.data = readFileSync(file);
    },

    async teardown() {
      if (store) for (const c of [...containers]) await deleteContainer(c);
      if (src) {
        await run('rm', ['-f', src.file]);
        src.dir.cleanup();
      }
    },

    async run({ rounds, only, log }) {
      const want = (name) => !only || name.includes(only);
      pkgcloud = want(read) ? await loadPkgcloud(log) : null;
      const samples = {}; // contender -> benchmark -> [{ mibs, cores }]
      const add = (who, bench, r) => {
        ((samples[who] ??= {})[bench] ??= []).push(r);
        const cores = Object.entries(r.cores)
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ');
        log(`  ${bench.padEnd(34)} ${who.padEnd(8)} ${fmt(r.mibs).padStart(6)} MiB/s  cores: ${cores}`);
      };
      const rotate = (xs, round) => xs.map((_, k) => xs[(k + round) % xs.length]);

      for (let round = 0; round < rounds; round++) {
        for (const who of rotate(['nbdts', 'raw'], round)) {
          const container = `${prefix}-${who}-r${round}`;
          containers.add(container);
          if (who === 'nbdts') {
            const args = nbdtsArgs(container, [`size=${sizeBytes}`, `object-size=${objectSize}`]);
            add(who, write, await throughServer(args, (uri) => ['--flush', src.file, uri]));
            if (want(read)) add(who, read, await throughServer(nbdtsArgs(container, []), (uri) => [uri, 'null:']));
          } else {
            await swift('PUT', container);
            add(
              who,
              write,
              await direct(() =>
                pool(parallel, objects, (i) =>
                  swift('PUT', `${container}/${keyOf(i)}`, src.data.subarray(i * objectSize, (i + 1) * objectSize)),
                ),
              ),
            );
            if (want(read)) {
              const order = pkgcloud ? rotate(['raw', 'pkgcloud'], round) : ['raw'];
              for (const reader of order) {
                add(
                  reader,
                  read,
                  await direct(() =>
                    reader === 'raw'
                      ? pool(parallel, objects, async (i) => {
                          const b = await swift('GET', `${container}/${keyOf(i)}`);
                          if (b.length !== objectSize) throw new Error(`GET ${keyOf(i)}: ${b.length} bytes`);
                        })
                      : pkgcloudGetAll(container),
                  ),
                );
              }
            }
          }
          await deleteContainer(container);
        }
      }

      const rows = [];
      const ratioRow = (bench, a, b, bar) => {
        const A = samples[a]?.[bench]?.map((s) => s.mibs);
        const B = samples[b]?.[bench]?.map((s) => s.mibs);
        if (!A || !B) return;
        rows.push({
          section: 'swift',
          name: `${bench} (${a} vs ${b})`,
          labels: [a, b],
          unit: 'MiB/s',
          samples: [A, B],
        });
        const ratio = median(A.map((x, k) => x / B[k]));
        log(
          `  ratio ${a}/${b} ${bench}: ${ratio.toFixed(2)}${bar ? ` (bar ${bar}x: ${ratio >= bar ? 'met' : 'MISSED'})` : ''}`,
        );
      };
      ratioRow(write, 'nbdts', 'raw', 0.8);
      ratioRow(read, 'nbdts', 'raw', 0.8);
      ratioRow(read, 'raw', 'pkgcloud');
      for (const [who, byBench] of Object.entries(samples)) {
        for (const [bench, xs] of Object.entries(byBench)) {
          const keys = Object.keys(xs[0].cores);
          log(
            `  median ${who.padEnd(8)} ${bench.padEnd(34)} ${fmt(median(xs.map((x) => x.mibs)))} MiB/s; cpu ` +
              `${keys.map((k) => `${k} ${median(xs.map((x) => x.cores[k])).toFixed(2)}`).join(', ')}`,
          );
        }
      }
      return rows;
    },
  };
}
