// nozero, side by side with nbdkit's: the same command line on both servers,
// the same real clients (nbdinfo --json, nbdsh), the same flags and errors.
import { afterAll, describe, expect, it } from 'vitest';
import { openStack } from '@nbdts/server';
import { Flag, definePlugin } from '@nbdts/plugin-api';
import { NBDSH_TRYIT, exportFacts, nbdshOnBoth, run, serverCommand, startPair, type Pair } from '@nbdts/testkit';
import nozero from '../src/index.ts';

const pairs: Pair[] = [];
afterAll(async () => {
  await Promise.all(pairs.map((p) => p.stop()));
});

async function pair(params: string[]): Promise<Pair> {
  const p = await startPair(['--filter=nozero', 'memory', '1M', ...params]);
  pairs.push(p);
  return p;
}

// Zero requests of each kind (fast ones only where advertised: nbdkit 1.32
// aborts on a fast zero it did not offer), then the data read back.
const BEHAVIOUR = `${NBDSH_TRYIT}
h.pwrite(b"\\x01" * 131072, 0)
if h.can_zero():
    if h.can_fast_zero():
        print("fast", tryit(lambda: h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO)))
    print("zero", tryit(lambda: h.zero(65536, 0)))
    print("nohole", tryit(lambda: h.zero(65536, 65536, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA)))
else:
    print("zero", tryit(lambda: h.zero(65536, 0)))
print("zeros", bytes(h.pread(131072, 0)).count(0))
`;

const MODES: Array<[string, string]> = [
  ['none', 'default'],
  ['emulate', 'default'],
  ['emulate', 'none'],
  ['emulate', 'slow'],
  ['notrim', 'default'],
  ['notrim', 'none'],
  ['notrim', 'slow'],
  ['notrim', 'ignore'],
  ['plugin', 'default'],
  ['plugin', 'none'],
  ['plugin', 'slow'],
  ['plugin', 'ignore'],
];

describe('nozero filter, against nbdkit', () => {
  it.each(MODES)('zeromode=%s fastzeromode=%s: same flags and same answers', async (zeromode, fastzeromode) => {
    const params = [`zeromode=${zeromode}`];
    if (fastzeromode !== 'default') params.push(`fastzeromode=${fastzeromode}`);
    const p = await pair(params);
    // nbdkit's memory plugin advertises no block size; nbdts always does.
    expect(await exportFacts(p.nbdts.uri, { blockSize: false })).toEqual(
      await exportFacts(p.nbdkit.uri, { blockSize: false }),
    );
    const out = await nbdshOnBoth(p, BEHAVIOUR);
    expect(out.nbdts).toBe(out.nbdkit);
    expect(out.nbdts).toMatch(/^zeros \d+$/m);
  });

  it('zeromode=none is the default: WRITE_ZEROES not advertised, writes of zeros still work', async () => {
    const p = await pair([]);
    const facts = await exportFacts(p.nbdts.uri);
    expect(facts).toMatchObject({ canZero: false, canFastZero: false, canTrim: true });
    expect(await exportFacts(p.nbdkit.uri, { blockSize: false })).toMatchObject({ canZero: false });
  });

  it('zeromode=emulate fastzeromode=ignore: fast zeroes are written (as documented; nbdkit 1.32 answers ENOTSUP)', async () => {
    const p = await pair(['zeromode=emulate', 'fastzeromode=ignore']);
    const script = `${NBDSH_TRYIT}
h.pwrite(b"\\x01" * 4096, 0)
print(tryit(lambda: h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)), bytes(h.pread(4096, 0)).count(0))
`;
    const out = await nbdshOnBoth(p, script);
    expect(out.nbdts.trim()).toBe('ok 4096');
    // The difference is nbdkit's: its manual says ignore behaves as if the flag had not been sent.
    expect(out.nbdkit.trim()).toBe('ENOTSUP 0');
  });

  it('refuses parameters it does not know, and fastzeromode without zeroes, in one line', async () => {
    for (const [args, message] of [
      [['zeromode=sometimes'], /nozero: zeromode: .*none.*emulate/],
      [['fastzeromode=slow'], /nozero: fastzeromode has no effect with zeromode=none/],
    ] as const) {
      const [cmd, ...argv] = serverCommand(['--filter=nozero', 'memory', '1M', ...args, '--run', 'true'], 'nbdts');
      const r = await run(cmd!, argv);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('nozero filter, in-process', () => {
  const zeroless = definePlugin({
    name: 'zeroless',
    open: () => ({}),
    getSize: () => 65536,
    pread: (_h, b) => {
      b.fill(0);
    },
    pwrite: () => {},
  });

  it('notrim and plugin need a layer below that zeroes natively', async () => {
    await nozero.configComplete!(await nozero.config!.parseAsync({ zeromode: 'notrim' }));
    await expect(openStack({ plugin: zeroless as never, filters: [nozero as never] })).rejects.toThrow(
      /zeromode=notrim needs a plugin that zeroes natively/,
    );
  });

  it('notrim drops MAY_TRIM and keeps FUA; emulate writes zeros with FUA', async () => {
    const seen: string[] = [];
    const spy = definePlugin({
      name: 'spy',
      open: () => ({}),
      getSize: () => 1 << 21,
      pread: () => {},
      pwrite: (_h, buf, _o, flags) => {
        seen.push(`pwrite ${buf.length} fua=${(flags & Flag.FUA) !== 0}`);
      },
      flush: () => {},
      zero: (_h, count, _o, flags) => {
        seen.push(`zero ${count} trim=${(flags & Flag.MAY_TRIM) !== 0} fua=${(flags & Flag.FUA) !== 0}`);
      },
      canFua: () => 'native',
    });
    await nozero.configComplete!(await nozero.config!.parseAsync({ zeromode: 'notrim' }));
    let s = await openStack({ plugin: spy as never, filters: [nozero as never] });
    await s.zero(4096, 0, Flag.MAY_TRIM | Flag.FUA);
    await s.close();
    await nozero.configComplete!(await nozero.config!.parseAsync({ zeromode: 'emulate' }));
    s = await openStack({ plugin: spy as never, filters: [nozero as never] });
    await s.zero((1 << 20) + 512, 0, Flag.MAY_TRIM | Flag.FUA);
    await s.close();
    expect(seen).toEqual(['zero 4096 trim=false fua=true', `pwrite ${1 << 20} fua=true`, 'pwrite 512 fua=true']);
  });
});
