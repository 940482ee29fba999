// nbdinfo (libnbd) against the memory plugin: handshake flags, sizes, export
// listing, the base:allocation map after writes and trims, and -s single mode.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  nbdinfoJson,
  nbdinfoMap,
  nbdshOk,
  requireTool,
  run,
  runOk,
  serverCommand,
  serverKind,
  startServer,
  type ServerProcess,
} from '@nbdts/testkit';

const GiB = 1 << 30;
const MiB = 1 << 20;
const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

describe('nbdinfo: memory size=1G', () => {
  let srv: ServerProcess;
  let ro: ServerProcess;
  beforeAll(async () => {
    requireTool('nbdinfo');
    [srv, ro] = await Promise.all([startServer(['memory', 'size=1G']), startServer(['-r', 'memory', 'size=1G'])]);
  });
  afterAll(async () => {
    await Promise.all([srv?.stop(), ro?.stop()]);
  });

  it('reports size and write capabilities', async () => {
    const info = await nbdinfoJson(srv.uri);
    expect(info.protocol).toBe('newstyle-fixed');
    expect(info.structured).toBe(true);
    expect(info.exports).toHaveLength(1);
    const e = info.exports[0]!;
    expect(e['export-size']).toBe(GiB);
    expect(e.is_read_only).toBe(false);
    expect(e.can_flush).toBe(true);
    expect(e.can_fua).toBe(true);
    expect(e.can_trim).toBe(true);
    expect(e.can_zero).toBe(true);
    expect(e.can_multi_conn).toBe(true);
    expect(e.contexts).toContain('base:allocation');
  });

  it('advertises sane block sizes', async () => {
    const e = (await nbdinfoJson(srv.uri)).exports[0]!;
    if (serverKind() === 'nbdkit' && e.block_size_minimum === undefined) return; // nbdkit's memory plugin sends none
    const { block_size_minimum: min, block_size_preferred: pref, block_size_maximum: max } = e;
    expect(min, 'NBD_INFO_BLOCK_SIZE missing').toBeDefined();
    expect(isPow2(min!) && min! <= 65536).toBe(true);
    expect(isPow2(pref!) && pref! >= 512 && pref! >= min!).toBe(true);
    expect(max! >= pref!).toBe(true);
    expect(max! % min!).toBe(0);
  });

  it('--size and --is read-only', async () => {
    const size = await runOk('nbdinfo', ['--size', srv.uri]);
    expect(size.stdout.trim()).toBe(String(GiB));
    // --is exits 0 for true, 2 for false.
    expect((await run('nbdinfo', ['--is', 'read-only', srv.uri])).code).toBe(2);
    expect((await run('nbdinfo', ['--is', 'read-only', ro.uri])).code).toBe(0);
  });

  it('-r export is read-only and offers no trim/zero/fua', async () => {
    const e = (await nbdinfoJson(ro.uri)).exports[0]!;
    expect(e.is_read_only).toBe(true);
    expect(e.can_trim).toBe(false);
    expect(e.can_zero).toBe(false);
    expect(e.can_fua).toBe(false);
    expect(e['export-size']).toBe(GiB);
  });

  it('--list shows the default export', async () => {
    const info = await nbdinfoJson('--list', srv.uri);
    expect(info.exports.map((x) => x['export-name'])).toEqual(['']);
    expect(info.exports[0]!['export-size']).toBe(GiB);
  });

  it('--map shows data where written and holes after trim', async () => {
    const fresh = await nbdinfoMap(srv.uri);
    expect(fresh.reduce((n, x) => n + x.length, 0)).toBe(GiB);
    expect(
      fresh.every((x) => (x.type & 1) === 1),
      'an unwritten memory disk is all hole',
    ).toBe(true);

    // 4 MiB of data at 8 MiB, then trim the middle 2 MiB of it (aligned, so no partial pages).
    await nbdshOk(`h.pwrite(b"\\xa5" * ${4 * MiB}, ${8 * MiB})\nh.flush()\nh.trim(${2 * MiB}, ${9 * MiB})`, srv.uri);
    const map = await nbdinfoMap(srv.uri);
    const typeAt = (off: number) => map.find((x) => x.offset <= off && off < x.offset + x.length)!.type;
    expect(typeAt(0) & 1).toBe(1);
    expect(typeAt(8 * MiB)).toBe(0);
    expect(typeAt(9 * MiB) & 2, 'trimmed range reads as zero').toBe(2);
    expect(typeAt(9 * MiB) & 1, 'trimmed range is a hole').toBe(1);
    expect(typeAt(11 * MiB + 4096)).toBe(0);
    expect(typeAt(12 * MiB) & 1).toBe(1);
    expect(map.reduce((n, x) => n + x.length, 0)).toBe(GiB);
    // Extents tile the disk with no gaps or overlaps.
    map.forEach((x, i) => {
      if (i > 0) expect(x.offset).toBe(map[i - 1]!.offset + map[i - 1]!.length);
    });
  });

  it('16 clients at once all get answers', async () => {
    const infos = await Promise.all(Array.from({ length: 16 }, () => nbdinfoJson(srv.uri)));
    for (const i of infos) expect(i.exports[0]!['export-size']).toBe(GiB);
  });

  it('a session of well-behaved clients logs no errors or warnings', () => {
    // nbdts logs JSON lines (pino levels: 40 warn, 50 error, 60 fatal); nbdkit prints "error:".
    expect(srv.stderr()).not.toMatch(/"level":[456]\d|error|warning/i);
  });
});

describe('server as a subprocess of the client', () => {
  it('-s serves one connection on stdin/stdout (libnbd connect_command)', async () => {
    const argv = JSON.stringify(serverCommand(['-s', 'memory', 'size=1M']));
    const out = await nbdshOk(
      `h.connect_command(${argv})\n` +
        'h.pwrite(b"single" * 100, 4096)\n' +
        'print(h.get_size(), h.is_read_only(), h.pread(600, 4096) == b"single" * 100)',
      null,
    );
    expect(out.trim()).toBe(`${MiB} False True`);
  });

  it('systemd socket activation: nbdinfo -- [ SERVER ... ]', async () => {
    requireTool('nbdinfo');
    const info = await nbdinfoJson('--', '[', ...serverCommand(['memory', 'size=1M']), ']');
    expect(info.exports[0]!['export-size']).toBe(MiB);
    expect(info.exports[0]!.is_read_only).toBe(false);
  });
});
