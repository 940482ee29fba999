// The s3 plugin against Ceph RGW (scripts/stores/ceph.sh): nbdts s3 vs
// nbdkit's S3 plugin vs the raw store (parallel SDK requests, no NBD at all).
//
//   node bench/run.mjs --sections s3 --size 256M          # all of it, 3 rounds
//   node bench/run.mjs --sections s3 --size 256M --only split
//
// Unlike the memory section this one runs its own rounds (section.run): every
// measurement gets a freshly started server, because the read cache (256 MiB
// by default) would otherwise serve later rounds from memory, and the split
// read-back must start cold. Start-up is not timed; the read or write is.
//
// Knobs (environment, for tuning experiments):
//   NBDTS_BENCH_S3_OBJECT_SIZE  split-mode object size (default 4M)
//   NBDTS_BENCH_S3_ARGS         extra `nbdts s3` parameters, e.g. "connections=32 chunk-size=4M";
//                               the raw client follows connections= and chunk-size=.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, measured, median, makeTempDir, parseSize, pool, repoRoot, run, startServer } from '../lib.mjs';

const MiB = 1 << 20;
const human = (n) => (n % (1 << 30) === 0 ? `${n / (1 << 30)} GiB` : `${n / MiB} MiB`);

// The SDK the plugin uses, resolved from the plugin's package (hoisted or not).
// Its notice that later versions need Node 22 is noise in a benchmark (the plugin mutes it too).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const sdk = createRequire(join(repoRoot, 'plugins/s3/package.json'))('@aws-sdk/client-s3');
const { Agent } = await import('node:http');

/** Credentials and endpoint of the test user: starts the store if needed (idempotent). */
async function rgw() {
  const script = join(repoRoot, 'scripts/stores/ceph.sh');
  await run('bash', [script, 'start'], { timeoutMs: 180_000 });
  const { stdout } = await run('bash', [script, 'env']);
  const env = Object.fromEntries([...stdout.matchAll(/(NBDTS_RGW_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  const dir = process.env.NBDTS_CEPH_DIR ?? '/tmp/nbdts-ceph';
  const pid = (name) => Number(readFileSync(join(dir, 'run', `${name}.pid`), 'utf8'));
  return { env, pids: { rgw: pid('rgw'), osd: pid('osd') } };
}

/** An SDK client set up like the plugin's: keep-alive sockets for `parallel` requests, no retries, no CRC32. */
function client(env, parallel) {
  const httpAgent = new Agent({ keepAlive: true, maxSockets: parallel, maxFreeSockets: parallel });
  return new sdk.S3Client({
    region: 'us-east-1',
    endpoint: env.NBDTS_RGW_ENDPOINT,
    forcePathStyle: true,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: env.NBDTS_RGW_ACCESS_KEY, secretAccessKey: env.NBDTS_RGW_SECRET_KEY },
    requestHandler: { httpAgent },
  });
}

/** @param {{ sizeBytes: number }} opts */
export default function s3Section({ sizeBytes = 256 * MiB } = {}) {
  // 4 MiB objects: RGW stores up to 4 MiB (rgw_max_chunk_size, rgw_obj_stripe_size) as one RADOS
  // object, so each PUT/GET is one RADOS op; the plugin's docs advise 1M-4M for filesystems; 8M
  // measured no better within noise, and would double the read-modify-write of small writes.
  const objectSize = parseSize(process.env.NBDTS_BENCH_S3_OBJECT_SIZE ?? '4M');
  const extra = (process.env.NBDTS_BENCH_S3_ARGS ?? '').split(/\s+/).filter(Boolean);
  const extraValue = (name, dflt) => {
    const a = extra.find((x) => x.startsWith(`${name}=`));
    return a ? a.slice(name.length + 1) : dflt;
  };
  // The raw client runs as many requests at once as the plugin (connections=, default 16)
  // and reads the single object in the plugin's chunk-size= ranges (default 1M).
  const parallel = Number(extraValue('connections', '16'));
  const chunkSize = parseSize(extraValue('chunk-size', '1M'));
  if (sizeBytes % objectSize !== 0)
    throw new Error(`--size must be a multiple of the object size ${human(objectSize)}`);
  const bucket = `nbdts-bench-${process.pid}-${Date.now().toString(36)}`;
  const objectKey = 'disk.img';
  let store; // { env, pids }
  let src; // { dir, file, data }

  const creds = () => ({
    NBDTS_BENCH_S3_ID: store.env.NBDTS_RGW_ACCESS_KEY,
    NBDTS_BENCH_S3_KEY: store.env.NBDTS_RGW_SECRET_KEY,
  });
  const common = () => [`endpoint-url=${store.env.NBDTS_RGW_ENDPOINT}`, `bucket=${bucket}`];
  const nbdtsArgs = (more) => [
    's3',
    ...common(),
    'access-key=env:NBDTS_BENCH_S3_ID',
    'secret-key=env:NBDTS_BENCH_S3_KEY',
    ...more,
    ...extra,
  ];

  /** Start a server, run one timed nbdcopy on it, stop it. Returns MiB/s and CPU cores used. */
  async function throughServer(kind, args, env, nbdcopyArgs) {
    const srv = await startServer(kind, args, { env });
    try {
      const m = await measured({ server: srv.pid, ...store.pids }, () => run('nbdcopy', nbdcopyArgs(srv.uri)));
      return { mibs: sizeBytes / MiB / m.seconds, cores: m.cores };
    } finally {
      await srv.stop();
    }
  }

  async function raw(fn) {
    const c = client(store.env, parallel);
    try {
      const m = await measured({ client: 'self', ...store.pids }, () => fn(c));
      return { mibs: sizeBytes / MiB / m.seconds, cores: m.cores };
    } finally {
      c.destroy();
    }
  }

  /** Every object under prefix, deleted in parallel (one by one: see docs/plugins/s3.md on DeleteObjects). */
  async function deletePrefix(c, prefix) {
    const keys = [];
    let token;
    do {
      const page = await c.send(
        new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      keys.push(...(page.Contents ?? []).map((o) => o.Key));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    await pool(parallel, keys.length, (i) => c.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: keys[i] })));
  }

  const readObject = `object read ${human(sizeBytes)} to null:`;
  const splitWrite = `split write ${human(sizeBytes)}, ${human(objectSize)} objects`;
  const splitRead = `split read ${human(sizeBytes)} cold, ${human(objectSize)} objects`;

  return {
    name: 's3',
    tools: [
      ['nbdcopy', 'libnbd-bin'],
      ['nbdkit', 'nbdkit'],
      ['bash', 'bash'],
    ],

    // A fresh bucket per run; one object of random bytes for single-object mode,
    // and the same bytes in tmpfs as the split-mode write source (and in memory
    // for the raw PUTs, so neither side pays for reading its source).
    async setup() {
      store = await rgw();
      const dir = makeTempDir();
      const file = existsSync('/dev/shm') ? `/dev/shm/nbdts-bench-s3-${process.pid}.img` : dir.join('src.img');
      src = { dir, file };
      await run('sh', ['-c', `head -c ${sizeBytes} /dev/urandom > '${file}'`]);
      src.data = readFileSync(file);
      const c = client(store.env, parallel);
      try {
        await c.send(new sdk.CreateBucketCommand({ Bucket: bucket }));
      } finally {
        c.destroy();
      }
      await run(
        process.execPath,
        [
          join(repoRoot, 'plugins/s3/bin/nbdts-s3.js'),
          'upload',
          file,
          bucket,
          objectKey,
          '--endpoint-url',
          store.env.NBDTS_RGW_ENDPOINT,
          '--access-key',
          'env:NBDTS_BENCH_S3_ID',
          '--secret-key',
          'env:NBDTS_BENCH_S3_KEY',
          '--jobs',
          String(parallel),
          '--quiet',
        ],
        { env: creds(), cwd: repoRoot },
      );
    },

    async teardown() {
      if (store) {
        const c = client(store.env, parallel);
        try {
          await deletePrefix(c, '');
          await c.send(new sdk.DeleteBucketCommand({ Bucket: bucket }));
        } catch (err) {
          console.error(`s3: could not delete bucket ${bucket}: ${err.message}`);
        } finally {
          c.destroy();
        }
      }
      if (src) {
        await run('rm', ['-f', src.file]);
        src.dir.cleanup();
      }
    },

    async run({ rounds, only, log }) {
      const want = (name) => !only || name.includes(only);
      const samples = {}; // contender -> benchmark -> [{ mibs, cores }]
      const add = (who, bench, r) => {
        ((samples[who] ??= {})[bench] ??= []).push(r);
        const cores = Object.entries(r.cores)
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ');
        log(`  ${bench.padEnd(38)} ${who.padEnd(8)} ${fmt(r.mibs).padStart(6)} MiB/s  cores: ${cores}`);
      };
      // Rotate who goes first each round, so no contender always meets the warmest store.
      const rotate = (xs, round) => xs.map((_, k) => xs[(k + round) % xs.length]);

      const nbdkitEnv = {
        // nbdkit's Python plugin must find Debian's python3 (with boto3), not another one on PATH.
        PATH: `/usr/bin:${process.env.PATH}`,
        AWS_ACCESS_KEY_ID: store.env.NBDTS_RGW_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: store.env.NBDTS_RGW_SECRET_KEY,
        AWS_DEFAULT_REGION: 'us-east-1',
      };
      const contenders1 = {
        nbdts: () => throughServer('nbdts', nbdtsArgs(['-r', `key=${objectKey}`]), creds(), (uri) => [uri, 'null:']),
        nbdkit: () =>
          throughServer('nbdkit', ['S3', ...common(), `key=${objectKey}`], nbdkitEnv, (uri) => [uri, 'null:']),
        // Ranged GETs of chunk-size, `parallel` at once, bodies discarded: the store's ceiling.
        raw: () =>
          raw((c) =>
            pool(parallel, Math.ceil(sizeBytes / chunkSize), async (i) => {
              const end = Math.min(sizeBytes, (i + 1) * chunkSize) - 1;
              const r = await c.send(
                new sdk.GetObjectCommand({ Bucket: bucket, Key: objectKey, Range: `bytes=${i * chunkSize}-${end}` }),
              );
              for await (const chunk of r.Body) void chunk;
            }),
          ),
      };
      if (want(readObject)) {
        for (let round = 0; round < rounds; round++) {
          for (const who of rotate(Object.keys(contenders1), round)) add(who, readObject, await contenders1[who]());
        }
      }

      // Split mode: write through nbdts (nbdcopy --flush: done when every object is stored),
      // stop, start again with an empty cache and read back; raw PUTs then GETs of the same
      // objects. Each round writes new keys and deletes them afterwards (untimed).
      const objects = sizeBytes / objectSize;
      const splitArgs = (key) => nbdtsArgs([`key=${key}`, `size=${sizeBytes}`, `object-size=${objectSize}`]);
      const rawKey = (prefix, i) => `${prefix}/${i.toString(16).padStart(16, '0')}`;
      if (want(splitWrite) || want(splitRead)) {
        const c = client(store.env, parallel);
        try {
          for (let round = 0; round < rounds; round++) {
            for (const who of rotate(['nbdts', 'raw', 'raw-md5'], round)) {
              const key = `${who}-r${round}`;
              if (who === 'nbdts') {
                add(
                  who,
                  splitWrite,
                  await throughServer('nbdts', splitArgs(key), creds(), (uri) => ['--flush', src.file, uri]),
                );
                add(who, splitRead, await throughServer('nbdts', splitArgs(key), creds(), (uri) => [uri, 'null:']));
              } else {
                // raw-md5: the same PUTs with the check nbdts makes, Content-MD5 hashed in the timed part.
                const md5 = who === 'raw-md5';
                add(
                  who,
                  splitWrite,
                  await raw((w) =>
                    pool(parallel, objects, (i) => {
                      const body = src.data.subarray(i * objectSize, (i + 1) * objectSize);
                      return w.send(
                        new sdk.PutObjectCommand({
                          Bucket: bucket,
                          Key: rawKey(key, i),
                          Body: body,
                          ContentLength: objectSize,
                          ContentMD5: md5 ? createHash('md5').update(body).digest('base64') : undefined,
                        }),
                      );
                    }),
                  ),
                );
                // Reading back is the same for both: raw reads only.
                if (!md5) {
                  add(
                    who,
                    splitRead,
                    await raw((g) =>
                      pool(parallel, objects, async (i) => {
                        const r = await g.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: rawKey(key, i) }));
                        for await (const chunk of r.Body) void chunk;
                      }),
                    ),
                  );
                }
              }
              await deletePrefix(c, `${key}/`);
            }
          }
        } finally {
          c.destroy();
        }
      }

      // Rows for the harness's table: nbdts against each other contender, ratio = median of per-round ratios.
      const rows = [];
      const row = (bench, b, label, bar) => {
        const A = samples.nbdts?.[bench]?.map((s) => s.mibs);
        const B = samples[b]?.[bench]?.map((s) => s.mibs);
        if (!A || !B) return;
        rows.push({
          section: 's3',
          name: `${bench} (nbdts vs ${label})`,
          labels: ['nbdts', label],
          unit: 'MiB/s',
          samples: [A, B],
        });
        const ratio = median(A.map((a, k) => a / B[k]));
        if (bar === undefined) log(`  ratio: nbdts/${label} ${bench}: ${ratio.toFixed(2)} (for comparison, no bar)`);
        else
          log(`  bar: nbdts/${label} ${bench}: ${ratio.toFixed(2)} (bar ${bar}x: ${ratio >= bar ? 'met' : 'MISSED'})`);
      };
      row(readObject, 'nbdkit', 'nbdkit S3', 2);
      row(readObject, 'raw', 'raw GETs', 0.8);
      row(splitWrite, 'raw', 'raw PUTs', 0.8);
      row(splitWrite, 'raw-md5', 'raw PUTs with Content-MD5');
      row(splitRead, 'raw', 'raw GETs', 0.8);
      // Median CPU (cores) per contender: what limits each figure.
      for (const [who, byBench] of Object.entries(samples)) {
        for (const [bench, xs] of Object.entries(byBench)) {
          const keys = Object.keys(xs[0].cores);
          log(
            `  cpu ${who.padEnd(7)} ${bench.padEnd(38)} ${keys.map((k) => `${k} ${median(xs.map((x) => x.cores[k])).toFixed(2)}`).join(', ')}`,
          );
        }
      }
      return rows;
    },
  };
}
