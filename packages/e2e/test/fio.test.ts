// fio's NBD engine (libnbd): random I/O at depth with crc32c verification, so
// every block written is read back and checked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool, runOk, startServer, tempDir, type ServerProcess, type TempDir } from '@nbdts/testkit';

interface FioSide {
  io_bytes: number;
  iops: number;
  total_ios: number;
}
interface FioJob {
  error: number;
  read: FioSide;
  write: FioSide;
}

let dir: TempDir;
beforeAll(() => {
  dir = tempDir();
});
afterAll(() => dir?.cleanup());

async function fio(uri: string, ...args: string[]): Promise<FioJob> {
  // cwd: fio may leave *-verify.state files behind; keep them out of the repo.
  const r = await runOk(
    requireTool('fio'),
    [
      '--name=e2e',
      '--ioengine=nbd',
      `--uri=${uri}`,
      '--output-format=json',
      '--verify_fatal=1',
      '--verify_state_save=0',
      ...args,
    ],
    { timeoutMs: 60_000, cwd: dir.path },
  );
  // fio prints "fio: connected to NBD server" before the JSON.
  const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: FioJob[] };
  expect(json.jobs).toHaveLength(1);
  return json.jobs[0]!;
}

describe('fio --ioengine=nbd: memory size=128M', () => {
  let srv: ServerProcess;
  beforeAll(async () => {
    srv = await startServer(['memory', 'size=128M']);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('4k random writes at depth 32, then every block verified', async () => {
    const j = await fio(srv.uri, '--rw=randwrite', '--bs=4k', '--iodepth=32', '--size=64M', '--verify=crc32c');
    expect(j.error).toBe(0);
    expect(j.write.io_bytes).toBe(64 << 20);
    expect(j.read.io_bytes, 'the verify pass reads back everything written').toBe(64 << 20);
  });

  it('a second connection verifies what the first wrote', async () => {
    const j = await fio(srv.uri, '--rw=randwrite', '--bs=4k', '--size=64M', '--verify=crc32c', '--verify_only');
    expect(j.error).toBe(0);
    expect(j.read.io_bytes).toBe(64 << 20);
  });

  it('3 s of mixed-size random read/write on 2 connections with backlog verification', async () => {
    const j = await fio(
      srv.uri,
      '--rw=randrw',
      '--bssplit=4k/50:64k/40:1m/10',
      '--iodepth=32',
      '--size=64M',
      '--time_based',
      '--runtime=3',
      '--verify=crc32c',
      '--verify_backlog=256',
      '--numjobs=2',
      '--offset_increment=64M',
      '--group_reporting',
    );
    expect(j.error).toBe(0);
    expect(j.write.total_ios).toBeGreaterThan(100);
    expect(j.read.total_ios).toBeGreaterThan(100);
  });
});
