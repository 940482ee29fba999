// The memory plugin: nbdts memory vs nbdkit memory, both sparse RAM disks.
// A section says how to start each server and which benchmarks to run on it;
// bench/run.mjs alternates the servers and reports medians.
import { existsSync } from 'node:fs';
import { fio, makeTempDir, run } from '../lib.mjs';

const GiB = 1 << 30;
const human = (n) => (n % GiB === 0 ? `${n / GiB} GiB` : `${n / (1 << 20)} MiB`);

/** @param {{ sizeBytes: number, runtime: number }} opts */
export default function memorySection({ sizeBytes = GiB, runtime = 5 } = {}) {
  let src;
  /** nbdcopy the source image into the export; MiB/s. */
  const copyIn = async (uri) => {
    const r = await run('nbdcopy', ['--flush', src.file, uri]);
    return sizeBytes / (1 << 20) / r.seconds;
  };
  return {
    name: 'memory',
    tools: [
      ['nbdcopy', 'libnbd-bin'],
      ['fio', 'fio'],
      ['nbdkit', 'nbdkit'],
    ],
    servers: { nbdts: ['memory', `size=${sizeBytes}`], nbdkit: ['memory', `size=${sizeBytes}`] },

    // The write source is a file of random bytes in tmpfs: reading it costs
    // nbdcopy almost nothing, it is the same bytes for both servers, and being
    // random it cannot be turned into zero requests by nbdcopy's sparse detection.
    async setup() {
      const dir = makeTempDir();
      const file = existsSync('/dev/shm') ? `/dev/shm/nbdts-bench-${process.pid}.img` : dir.join('src.img');
      src = { dir, file };
      await run('sh', ['-c', `head -c ${sizeBytes} /dev/urandom > '${file}'`]);
    },
    async teardown() {
      if (!src) return;
      await run('rm', ['-f', src.file]);
      src.dir.cleanup();
    },

    // Run once per server start before measuring, identical for both servers:
    // nbdts's JIT and nbdkit's thread pool both reach steady state.
    async warmup(uri) {
      await fio(uri, ['--rw=randrw', '--bs=64k', '--iodepth=16', '--size=256M', '--time_based', '--runtime=2']);
    },

    // Order matters: the write fills the disk, so the reads read real data, not holes.
    benchmarks: [
      {
        // Both servers stay up for the section, so after the first round this rewrites data already there.
        name: `nbdcopy write ${human(sizeBytes)}`,
        unit: 'MiB/s',
        run: (uri) => copyIn(uri),
      },
      {
        // Into a freshly started server every round: every page is written for the first time.
        name: `nbdcopy write ${human(sizeBytes)}, fresh disk`,
        unit: 'MiB/s',
        fresh: true,
        run: (uri) => copyIn(uri),
      },
      {
        name: `nbdcopy read ${human(sizeBytes)} to null:`,
        unit: 'MiB/s',
        async run(uri) {
          const r = await run('nbdcopy', [uri, 'null:']);
          return sizeBytes / (1 << 20) / r.seconds;
        },
      },
      {
        name: 'fio 4k randread QD64',
        unit: 'IOPS',
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
      },
      {
        name: 'fio 4k randwrite QD64',
        unit: 'IOPS',
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
      },
    ],
  };
}
