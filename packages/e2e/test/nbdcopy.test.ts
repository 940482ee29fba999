// nbdcopy round trips: file -> NBD -> file through the memory and file plugins,
// with multi-conn and the protocol's largest (32 MiB) requests.
import { closeSync, openSync, statSync, truncateSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  nbdinfoMap,
  requireTool,
  runOk,
  sha256File,
  sparseFile,
  startServer,
  tempDir,
  writeRandomFile,
  type ServerProcess,
  type TempDir,
} from '@nbdts/testkit';

const MiB = 1 << 20;
let dir: TempDir;
let nbdcopy: string;
const copy = (...args: string[]) => runOk(nbdcopy, args, { timeoutMs: 120_000 });

beforeAll(() => {
  nbdcopy = requireTool('nbdcopy');
  dir = tempDir();
  writeRandomFile(dir.join('src.img'), 96 * MiB);
});
afterAll(() => dir?.cleanup());

describe('nbdcopy: memory plugin', () => {
  let srv: ServerProcess;
  beforeAll(async () => {
    srv = await startServer(['memory', 'size=96M']);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('round trip with default settings', async () => {
    await copy('--flush', dir.join('src.img'), srv.uri);
    await copy(srv.uri, dir.join('out1.img'));
    expect(statSync(dir.join('out1.img')).size).toBe(96 * MiB);
    expect(await sha256File(dir.join('out1.img'))).toBe(await sha256File(dir.join('src.img')));
  });

  it('round trip with 4 connections and 32 MiB requests', async () => {
    // Overwrite with different data first so a no-op copy could not pass.
    writeRandomFile(dir.join('src2.img'), 96 * MiB);
    await copy('-C', '4', '--request-size=33554432', '--flush', dir.join('src2.img'), srv.uri);
    await copy('-C', '4', '--request-size=33554432', srv.uri, dir.join('out2.img'));
    expect(await sha256File(dir.join('out2.img'))).toBe(await sha256File(dir.join('src2.img')));
  });

  it('synchronous mode, one request at a time', async () => {
    await copy('--synchronous', '--request-size=1048576', dir.join('src.img'), srv.uri);
    await copy('--synchronous', srv.uri, dir.join('out3.img'));
    expect(await sha256File(dir.join('out3.img'))).toBe(await sha256File(dir.join('src.img')));
  });

  it('zero regions of a sparse source become holes on the export', async () => {
    // 96 MiB: random 0-8 MiB, zeros 8-88 MiB, random 88-96 MiB.
    const p = dir.join('sparse.img');
    const fd = openSync(p, 'w');
    const a = Buffer.alloc(8 * MiB, 0x5a);
    writeSync(fd, a, 0, a.length, 0);
    writeSync(fd, a, 0, a.length, 88 * MiB);
    closeSync(fd);
    truncateSync(p, 96 * MiB);
    await copy(p, srv.uri); // the export holds random data from the previous test: zeros must replace it
    const map = await nbdinfoMap(srv.uri);
    const typeAt = (off: number) => map.find((x) => x.offset <= off && off < x.offset + x.length)!.type;
    expect(typeAt(0)).toBe(0);
    expect(typeAt(40 * MiB) & 2, 'zeroed region reads as zero').toBe(2);
    expect(typeAt(90 * MiB)).toBe(0);
    await copy(srv.uri, dir.join('sparse-out.img'));
    expect(await sha256File(dir.join('sparse-out.img'))).toBe(await sha256File(p));
  });

  it('reads to null:', async () => {
    await copy(srv.uri, 'null:');
  });
});

describe('nbdcopy: file plugin', () => {
  it('writes land in the backing file and read back identically', async () => {
    const backing = dir.join('backing.img');
    sparseFile(backing, 96 * MiB);
    const srv = await startServer(['file', `file=${backing}`]);
    try {
      await copy('-C', '4', '--flush', dir.join('src.img'), srv.uri);
      await copy(srv.uri, dir.join('file-out.img'));
      expect(await sha256File(dir.join('file-out.img'))).toBe(await sha256File(dir.join('src.img')));
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    expect(statSync(backing).size).toBe(96 * MiB);
    expect(await sha256File(backing)).toBe(await sha256File(dir.join('src.img')));
  });
});
