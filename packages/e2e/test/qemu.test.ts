// QEMU's NBD client: qemu-io commands (patterns, write-zeroes, discard, aio)
// and qemu-img map/compare/convert in both directions.
import { closeSync, openSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  requireTool,
  run,
  runOk,
  sha256File,
  startServer,
  tempDir,
  writeRandomFile,
  type ServerProcess,
  type TempDir,
} from '@nbdts/testkit';

const MiB = 1 << 20;
let dir: TempDir;
let qemuIo: string;
let qemuImg: string;
beforeAll(() => {
  qemuIo = requireTool('qemu-io');
  qemuImg = requireTool('qemu-img');
  dir = tempDir();
});
afterAll(() => dir?.cleanup());

/** qemu-io -f raw with one -c per command; returns stdout (fails on a non-zero exit). */
async function qio(uri: string, ...cmds: string[]): Promise<string> {
  const r = await runOk(qemuIo, ['-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), uri]);
  expect(r.stdout).not.toMatch(/failed|error/i);
  return r.stdout;
}

interface MapSeg {
  start: number;
  length: number;
  zero: boolean;
  data: boolean;
}

describe('qemu-io: memory size=16M', () => {
  let srv: ServerProcess;
  beforeAll(async () => {
    srv = await startServer(['memory', 'size=16M']);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('write, read with pattern check, write-zeroes, discard, flush, aio', async () => {
    const out = await qio(
      srv.uri,
      'write -P 0xab 0 1M',
      'read -P 0xab 0 1M',
      'write -P 0x01 1M 1M',
      'write -z 1M 1M',
      'read -P 0x00 1M 1M',
      'write -P 0x02 2M 1M',
      'discard 2M 1M',
      'read -P 0x00 2M 1M',
      'flush',
      'aio_write -P 0xcd 3M 64k',
      'aio_write -P 0xce 4M 64k',
      'aio_flush',
      'read -P 0xcd 3M 64k',
      'read -P 0xce 4M 64k',
      'read -P 0xab 0 1M',
    );
    expect(out).toContain('wrote 1048576/1048576 bytes at offset 0');
    expect(out).toContain('wrote 1048576/1048576 bytes at offset 1048576');
    expect(out).toContain('discard 1048576/1048576 bytes at offset 2097152');
    expect(out).toContain('wrote 65536/65536 bytes at offset 3145728');
    expect(out).toContain('wrote 65536/65536 bytes at offset 4194304');
    expect(out.match(/^read \d+\/\d+ bytes/gm)).toHaveLength(6);
  });

  it('a wrong pattern is detected (the check itself works)', async () => {
    const r = await run(qemuIo, ['-f', 'raw', '-c', 'read -P 0x77 0 64k', srv.uri]);
    expect(r.stdout).toContain('Pattern verification failed');
  });

  it('qemu-img map shows data and zero ranges', async () => {
    const r = await runOk(qemuImg, ['map', '--output=json', '-f', 'raw', srv.uri]);
    const segs = JSON.parse(r.stdout) as MapSeg[];
    const at = (off: number) => segs.find((s) => s.start <= off && off < s.start + s.length)!;
    expect(at(0)).toMatchObject({ data: true, zero: false });
    expect(at(MiB + 4096).zero).toBe(true);
    expect(at(2 * MiB + 4096).zero).toBe(true);
    expect(at(3 * MiB)).toMatchObject({ data: true, zero: false });
    expect(at(8 * MiB).zero).toBe(true);
    expect(segs.reduce((n, s) => n + s.length, 0)).toBe(16 * MiB);
  });

  it('qemu-img info sees the virtual size', async () => {
    const r = await runOk(qemuImg, ['info', '--output=json', '-f', 'raw', srv.uri]);
    expect((JSON.parse(r.stdout) as { 'virtual-size': number })['virtual-size']).toBe(16 * MiB);
  });
});

describe('qemu-img convert and compare: memory size=32M', () => {
  let srv: ServerProcess;
  beforeAll(async () => {
    srv = await startServer(['memory', 'size=32M']);
    writeRandomFile(dir.join('src.img'), 32 * MiB);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('convert raw file -> nbd, then compare says identical', async () => {
    await runOk(qemuImg, ['convert', '-n', '-f', 'raw', '-O', 'raw', dir.join('src.img'), srv.uri]);
    const r = await run(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', dir.join('src.img'), srv.uri]);
    expect(r.stdout).toContain('Images are identical');
    expect(r.code).toBe(0);
  });

  it('convert nbd -> raw file gives the same bytes', async () => {
    await runOk(qemuImg, ['convert', '-f', 'raw', '-O', 'raw', srv.uri, dir.join('out.img')]);
    expect(await sha256File(dir.join('out.img'))).toBe(await sha256File(dir.join('src.img')));
  });

  it('compare notices a one-byte difference', async () => {
    const fd = openSync(dir.join('out.img'), 'r+');
    writeSync(fd, Buffer.from([0xff ^ 0x5a]), 0, 1, 20 * MiB + 7);
    closeSync(fd);
    await qio(srv.uri, 'write -P 0x5a 20M 4k'); // make the byte differ whatever it was
    const r = await run(qemuImg, ['compare', '-f', 'raw', '-F', 'raw', dir.join('out.img'), srv.uri]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Content mismatch at offset 20971520');
  });

  it('convert a qcow2 image into the export', async () => {
    const q = dir.join('src.qcow2');
    await runOk(qemuImg, ['create', '-q', '-f', 'qcow2', q, '32M']);
    await runOk(qemuIo, ['-f', 'qcow2', '-c', 'write -P 0x42 5M 3M', '-c', 'write -P 0x43 31M 1M', q]);
    await runOk(qemuImg, ['convert', '-n', '-f', 'qcow2', '-O', 'raw', q, srv.uri]);
    const r = await run(qemuImg, ['compare', '-f', 'qcow2', '-F', 'raw', q, srv.uri]);
    expect(r.stdout).toContain('Images are identical');
    await qio(srv.uri, 'read -P 0x42 5M 3M', 'read -P 0x43 31M 1M', 'read -P 0 0 5M');
  });
});
