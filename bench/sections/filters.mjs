// What a stack of pass-through filters costs: the memory plugin bare and
// under the same filters, on nbdts and on nbdkit, in one run.
//
//   node bench/run.mjs --sections filters              # 1 GiB, 3 rounds
//   NBDTS_BENCH_FILTERS="nozero noparallel stats" node bench/run.mjs --sections filters
//
// Four contenders, each measurement alternating between them round by round:
// nbdts bare, nbdts with the filters, nbdkit bare, nbdkit with the filters.
// Rows: the stack against the bare plugin on each server (the stack's cost;
// goal: nbdts loses under 5%), and nbdts against nbdkit with the same stack
// (goal: at or above nbdkit's ratio for the bare plugins).
//
// The default stack, parameters included, passes every request through:
// nozero zeromode=plugin, noparallel serialize=none... (see FILTER_ARGS), and
// stats writing its file at exit.
import { existsSync } from 'node:fs';
import { fio, makeTempDir, median, run, startServer } from '../lib.mjs';

const GiB = 1 << 30;
const human = (n) => (n % GiB === 0 ? `${n / GiB} GiB` : `${n / (1 << 20)} MiB`);

/** Parameters that make each filter of the default stack pass everything through. */
const FILTER_ARGS = {
  nozero: ['zeromode=plugin'],
  noparallel: ['serialize=none'],
  stats: (dir, kind) => [`statsfile=${dir.join(`stats-${kind}.txt`)}`],
};

/** @param {{ sizeBytes: number, runtime: number }} opts */
export default function filtersSection({ sizeBytes = GiB, runtime = 5 } = {}) {
  const names = (process.env.NBDTS_BENCH_FILTERS ?? 'nozero noparallel stats').split(/\s+/).filter(Boolean);
  let src;
  let dir;
  const argsFor = (kind, stacked) => {
    const params = [];
    const filters = [];
    if (stacked) {
      for (const n of names) {
        filters.push(`--filter=${n}`);
        const a = FILTER_ARGS[n];
        params.push(...(typeof a === 'function' ? a(dir, kind) : (a ?? [])));
      }
    }
    return [...filters, 'memory', `size=${sizeBytes}`, ...params];
  };
  const benches = [
    {
      name: `nbdcopy write ${human(sizeBytes)}`,
      async run(uri) {
        const r = await run('nbdcopy', ['--flush', src, uri]);
        return sizeBytes / (1 << 20) / r.seconds;
      },
      unit: 'MiB/s',
    },
    {
      name: `nbdcopy read ${human(sizeBytes)} to null:`,
      async run(uri) {
        const r = await run('nbdcopy', [uri, 'null:']);
        return sizeBytes / (1 << 20) / r.seconds;
      },
      unit: 'MiB/s',
    },
    {
      name: 'fio 4k randread QD64',
      async run(uri) {
        const j = await fio(uri, [
          '--rw=randread',
          '--bs=4k',
          '--iodepth=64',
          `--size=${sizeBytes}`,
          '--time_based',
          `--runtime=${runtime}`,
          '--norandommap',
          '--randrepeat=0',
        ]);
        return j.read.iops;
      },
      unit: 'IOPS',
    },
    {
      name: 'fio 4k randwrite QD64',
      async run(uri) {
        const j = await fio(uri, [
          '--rw=randwrite',
          '--bs=4k',
          '--iodepth=64',
          `--size=${sizeBytes}`,
          '--time_based',
          `--runtime=${runtime}`,
          '--norandommap',
          '--randrepeat=0',
        ]);
        return j.write.iops;
      },
      unit: 'IOPS',
    },
  ];
  return {
    name: 'filters',
    tools: [
      ['nbdcopy', 'libnbd-bin'],
      ['fio', 'fio'],
      ['nbdkit', 'nbdkit'],
    ],
    async setup() {
      dir = makeTempDir();
      src = existsSync('/dev/shm') ? `/dev/shm/nbdts-bench-filters-${process.pid}.img` : dir.join('src.img');
      await run('sh', ['-c', `head -c ${sizeBytes} /dev/urandom > '${src}'`]);
    },
    async teardown() {
      await run('rm', ['-f', src]);
      dir?.cleanup();
    },
    async run({ rounds, only, log }) {
      const contenders = [
        ['nbdts', false],
        ['nbdts', true],
        ['nbdkit', false],
        ['nbdkit', true],
      ];
      const label = ([kind, stacked]) => `${kind}${stacked ? `+${names.join('+')}` : ''}`;
      const samples = new Map(); // label -> bench -> [values]
      const servers = [];
      try {
        for (const c of contenders) {
          const srv = await startServer(c[0], argsFor(c[0], c[1]));
          servers.push(srv);
          // Same warm-up for everyone: JIT and thread pools at steady state, and the disk written.
          await run('nbdcopy', [src, srv.uri]);
        }
        for (const b of benches.filter((x) => !only || x.name.includes(only))) {
          for (let round = 0; round < rounds; round++) {
            const order = round % 2 === 0 ? [0, 1, 2, 3] : [3, 2, 1, 0];
            for (const i of order) {
              const v = await b.run(servers[i].uri);
              const l = label(contenders[i]);
              const byBench = samples.get(l) ?? new Map();
              samples.set(l, byBench);
              byBench.set(b.name, [...(byBench.get(b.name) ?? []), v]);
              log(`  ${b.name.padEnd(30)} round ${round + 1} ${l.padEnd(28)} ${v.toFixed(0)} ${b.unit}`);
            }
          }
        }
      } finally {
        for (const s of servers) await s.stop();
      }
      const rows = [];
      const row = (bench, a, b, unit, what) => {
        const A = samples.get(a)?.get(bench);
        const B = samples.get(b)?.get(bench);
        if (!A || !B) return;
        rows.push({ section: 'filters', name: `${bench} (${a} vs ${b})`, labels: [a, b], unit, samples: [A, B] });
        log(`  ${what}: ${a} / ${b} ${bench}: ${median(A.map((x, k) => x / B[k])).toFixed(3)}`);
      };
      const [tsBare, tsStack, kitBare, kitStack] = contenders.map(label);
      for (const b of benches) {
        row(b.name, tsStack, tsBare, b.unit, 'stack cost on nbdts (goal >= 0.95)');
        row(b.name, kitStack, kitBare, b.unit, 'stack cost on nbdkit');
        row(b.name, tsStack, kitStack, b.unit, 'same stack, nbdts vs nbdkit');
        row(b.name, tsBare, kitBare, b.unit, 'bare plugins, nbdts vs nbdkit');
      }
      return rows;
    },
  };
}
