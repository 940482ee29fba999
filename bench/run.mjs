#!/usr/bin/env node
// nbdts vs nbdkit benchmark. Starts both servers on private Unix sockets and
// runs each benchmark on them alternately (A, B, B, A, A, B, ...) so drift in
// machine load hits both alike; prints per-benchmark medians and the ratio A/B
// (> 1 means A is faster) as text and as a markdown table.
//
//   npm run bench                              # nbdts vs nbdkit, 3 rounds
//   node bench/run.mjs --rounds 5 --runtime 10
//   node bench/run.mjs --a nbdkit --b nbdkit   # sanity check: ratio ~1.0
//   node bench/run.mjs --size 256M --only fio  # quick run, benchmarks matching "fio"
//   node bench/run.mjs --sections memory,swift # sections from bench/sections/*.mjs
//   node bench/run.mjs --sections s3 --size 256M  # s3 plugin on Ceph RGW vs nbdkit S3 and raw S3
import { readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fmt, median, parseSize, requireTools, startServer } from './lib.mjs';

const { values: opt } = parseArgs({
  options: {
    a: { type: 'string', default: 'nbdts' },
    b: { type: 'string', default: 'nbdkit' },
    rounds: { type: 'string', default: '3' },
    runtime: { type: 'string', default: '5' },
    size: { type: 'string', default: '1G' },
    sections: { type: 'string', default: 'memory' },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help) {
  console.log(
    'usage: node bench/run.mjs [--a nbdts] [--b nbdkit] [--rounds 3] [--runtime 5] [--size 1G] [--sections memory] [--only TEXT]',
  );
  console.log(`sections available: ${listSections().join(', ')}`);
  process.exit(0);
}

function listSections() {
  return readdirSync(new URL('./sections/', import.meta.url))
    .filter((f) => f.endsWith('.mjs'))
    .map((f) => f.slice(0, -4));
}

const rounds = Number(opt.rounds);
const config = { sizeBytes: parseSize(opt.size, '--size'), runtime: Number(opt.runtime) };
const kinds = [opt.a, opt.b];
const label = (k, i) => (kinds[0] === kinds[1] ? `${k}#${i + 1}` : k);
const results = []; // { section, name, unit, samples: [[...A], [...B]] }

console.log(
  `# nbdts benchmark: A=${label(kinds[0], 0)} B=${label(kinds[1], 1)}, ${rounds} rounds, ` +
    `size ${opt.size}, fio runtime ${config.runtime}s, ${new Date().toISOString()}`,
);

for (const name of opt.sections.split(',')) {
  const mod = await import(`./sections/${name}.mjs`);
  const section = mod.default(config);
  await requireTools(section.tools ?? []);
  // A section with its own run() takes its rounds itself (fresh servers per
  // measurement, a third contender such as the raw store); it returns table
  // rows like the ones below, with contenders named in each row's name.
  if (section.run) {
    await section.setup?.();
    try {
      results.push(...(await section.run({ rounds, only: opt.only, log: (s) => console.log(s) })));
    } finally {
      await section.teardown?.();
    }
    continue;
  }
  const benches = section.benchmarks.filter((b) => !opt.only || b.name.includes(opt.only));
  const rows = benches.map((b) => ({ section: section.name, name: b.name, unit: b.unit, samples: [[], []] }));
  results.push(...rows);
  await section.setup?.();
  // Both servers stay up for the whole section; each benchmark runs A and B
  // back to back, round after round, so every A figure has a B figure taken
  // seconds apart under the same machine load.
  const servers = [];
  try {
    for (const [i, k] of kinds.entries()) {
      servers[i] = await startServer(k, section.servers[k], { env: section.env?.[k] });
      await section.warmup?.(servers[i].uri);
    }
    for (const [j, b] of benches.entries()) {
      for (let round = 0; round < rounds; round++) {
        // Alternate who goes first, so neither always gets the warmer caches.
        for (const i of round % 2 === 0 ? [0, 1] : [1, 0]) {
          // A benchmark marked fresh gets a server of its own per measurement (start-up untimed).
          let v;
          if (b.fresh) {
            const srv = await startServer(kinds[i], section.servers[kinds[i]], { env: section.env?.[kinds[i]] });
            try {
              v = await b.run(srv.uri);
            } finally {
              await srv.stop();
            }
          } else {
            v = await b.run(servers[i].uri);
          }
          rows[j].samples[i][round] = v;
          console.log(`  ${b.name.padEnd(30)} round ${round + 1} ${label(kinds[i], i).padEnd(9)} ${fmt(v)} ${b.unit}`);
        }
      }
    }
  } finally {
    for (const srv of servers) await srv?.stop();
    await section.teardown?.();
  }
}

const A = label(kinds[0], 0);
const B = label(kinds[1], 1);
console.log('\n## Medians\n');
console.log(`| section | benchmark | unit | ${A} | ${B} | ${A}/${B} | range ${A} / ${B} |`);
console.log('| --- | --- | --- | ---: | ---: | ---: | --- |');
for (const r of results) {
  const [ma, mb] = r.samples.map(median);
  // The ratio is the median of the per-round ratios: each pair ran seconds apart.
  const ratio = median(r.samples[0].map((a, k) => a / r.samples[1][k]));
  const spread = r.samples.map((xs) => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`).join(' / ');
  console.log(`| ${r.section} | ${r.name} | ${r.unit} | ${fmt(ma)} | ${fmt(mb)} | ${ratio.toFixed(2)} | ${spread} |`);
}
console.log(
  `\nHigher is better for every unit; ratio > 1 means ${A} is faster. ${A} and ${B} columns: medians of ${rounds} rounds;` +
    ` ratio: median of the per-round ratios; range: min-max of each.`,
);
if (results.some((r) => r.labels))
  console.log(`Rows naming "X vs Y" (from sections with their own run()): the ${A} column is X, the ${B} column Y.`);
