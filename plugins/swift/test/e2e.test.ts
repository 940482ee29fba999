import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_KEY, META, SwiftContainerStore } from '../src/index.ts';
import { treeChecksums, withLoopMount, withNbdfuse, writeRandomTree } from '@nbdts/testkit';
import { ensureSwift, removeContainer, uniqueName, v1Connection, type SwiftEnv } from './helpers.ts';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../../packages/cli/bin/nbdts.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nbdts-swift-e2e-'));

let env: SwiftEnv;
const procs = new Set<ChildProcess>();
const cleanup: SwiftContainerStore[] = [];

beforeAll(async () => {
  env = await ensureSwift();
});

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const s of cleanup) await removeContainer(s);
});

interface Server {
  proc: ChildProcess;
  uri: string;
  stderr(): string;
  /** Send a signal and wait for the exit status. */
  stop(signal: NodeJS.Signals): Promise<number | null>;
}

let serial = 0;

/** Start `nbdts swift ...` on a private Unix socket; the password travels in the environment, not argv. */
function startServer(params: string[]): Promise<Server> {
  const sock = join(dir, `s${serial++}.sock`);
  const proc = spawn(
    process.execPath,
    [
      CLI,
      '-U',
      sock,
      'swift',
      `auth-url=${env.authUrl}`,
      `username=${env.user}`,
      'password=env:NBDTS_TEST_SWIFT_KEY',
      ...params,
    ],
    {
      env: { ...process.env, NBDTS_TEST_SWIFT_KEY: env.key },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  procs.add(proc);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      procs.delete(proc);
      resolve(code);
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not start: ${err}`));
    }, 60_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const uri = /^(nbd\+unix:\/\/\S+)$/m.exec(out)?.[1];
      if (uri) {
        clearTimeout(timer);
        resolve({
          proc,
          uri,
          stderr: () => err,
          stop: async (signal) => {
            proc.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`server exited (${code}): ${err}${out}`), { code, stderr: err + out }));
    });
  });
}

function store(name: string): SwiftContainerStore {
  const s = new SwiftContainerStore(v1Connection(env), name);
  cleanup.push(s);
  return s;
}

async function qemuIo(uri: string, ...cmds: string[]): Promise<string> {
  const args = ['-f', 'raw'];
  for (const c of cmds) args.push('-c', c);
  const { stdout } = await run('qemu-io', [...args, uri], { timeout: 60_000 });
  return stdout;
}

describe('nbdts swift end to end', { timeout: 150_000 }, () => {
  it('round-trips an image with nbdcopy, and the data survives a restart', async () => {
    const name = uniqueName('e2e-copy');
    store(name);
    const size = 4 * 1024 * 1024;
    const image = join(dir, 'in.img');
    const data = randomBytes(size);
    data.fill(0, 1024 * 1024, 2 * 1024 * 1024); // a zero stretch: stored as no objects
    writeFileSync(image, data);
    let srv = await startServer([`container=${name}`, 'size=4M', 'object-size=128K']);
    await run('nbdcopy', ['--flush', image, srv.uri], { timeout: 60_000 });
    expect(await srv.stop('SIGTERM')).toBe(0);
    srv = await startServer([`container=${name}`]);
    const out = join(dir, 'out.img');
    await run('nbdcopy', [srv.uri, out], { timeout: 60_000 });
    expect(readFileSync(out).equals(data)).toBe(true);
    expect(await srv.stop('SIGTERM')).toBe(0);
    const keys: string[] = [];
    for await (const o of store(name).list('disk.part/')) keys.push(o.key);
    expect(keys).toHaveLength(32 - 8);
  });

  it('reads and writes unaligned ranges with qemu-io', async () => {
    const name = uniqueName('e2e-qemu');
    store(name);
    const srv = await startServer([`container=${name}`, 'size=2M']);
    await qemuIo(srv.uri, 'write -P 0xcd 100000 300000', 'write -P 0x11 65535 2');
    const read = await qemuIo(srv.uri, 'read -P 0xcd 100000 300000', 'read -P 0x11 65535 2', 'read -P 0 0 65535');
    expect(read).not.toMatch(/Pattern verification failed/);
    expect(read.match(/^read /gm)).toHaveLength(3);
    expect(await srv.stop('SIGTERM')).toBe(0);
  });

  it('after kill -9: a restart is refused until force=true, and flushed data is there', async () => {
    const name = uniqueName('e2e-kill');
    const s = store(name);
    let srv = await startServer([`container=${name}`, 'size=1M']);
    await qemuIo(srv.uri, 'write -P 0x42 0 200000', 'flush');
    await srv.stop('SIGKILL');
    expect((await s.getContainerMeta())[META.client]).toMatch(/^nbdts\//);
    const refused = await startServer([`container=${name}`]).catch(
      (e: Error & { code?: number; stderr?: string }) => e,
    );
    expect(refused).toBeInstanceOf(Error);
    expect((refused as { code?: number }).code).toBe(1);
    expect((refused as { stderr: string }).stderr).toMatch(/in use by nbdts\/.*force=true/);
    srv = await startServer([`container=${name}`, 'force=true']);
    expect(srv.stderr()).toMatch(/breaking the lock/);
    const read = await qemuIo(srv.uri, 'read -P 0x42 0 200000', 'read -P 0 200000 100');
    expect(read).not.toMatch(/Pattern verification failed/);
    expect(await srv.stop('SIGTERM')).toBe(0);
  });

  it('SIGTERM stores unflushed writes before exiting and unlocks', async () => {
    const name = uniqueName('e2e-term');
    const s = store(name);
    const srv = await startServer([`container=${name}`, 'size=1M', 'object-size=64K']);
    // nbdsh writes without flushing; the server is told to stop at once.
    // nbdsh is Python: use the system interpreter that has the nbd module, not a pyenv/venv one.
    await run('nbdsh', ['-u', srv.uri, '-c', 'h.pwrite(b"\\xee" * 70000, 10000)'], {
      timeout: 30_000,
      env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` },
    });
    expect(await srv.stop('SIGTERM')).toBe(0);
    const first = await s.get('disk.part/00000000');
    const second = await s.get('disk.part/00000001');
    expect(first!.subarray(10000).every((b) => b === 0xee)).toBe(true);
    expect(first!.subarray(0, 10000).every((b) => b === 0)).toBe(true);
    expect(second!.subarray(0, 80000 - 65536).every((b) => b === 0xee)).toBe(true);
    expect((await s.getContainerMeta())[META.client]).toBeUndefined();
    expect(await s.head(LOCK_KEY)).toBeNull();
  });

  it('holds an ext4 filesystem: mkfs + mount through nbdfuse + rsync a tree, identical after a restart', async () => {
    const name = uniqueName('e2e-fs');
    store(name);
    const fuseDir = join(dir, 'fuse');
    const mnt = join(dir, 'mnt');

    // A tree of files of varied sizes (empty, unaligned, many blocks), rsynced onto the disk.
    const tree = join(dir, 'tree');
    writeRandomTree(tree, 40, 256 * 1024, (p) => mkdirSync(p, { recursive: true }));
    const expected = await treeChecksums(tree);

    let srv = await startServer([`container=${name}`, 'size=32M', 'object-size=256K']);
    await withNbdfuse(srv.uri, fuseDir, async (disk) => {
      await run('mkfs.ext4', ['-q', '-F', disk]);
      await withLoopMount(disk, mnt, async () => {
        writeFileSync(join(mnt, 'hello.txt'), 'hello from swift\n');
        await run('rsync', ['-a', `${tree}/`, join(mnt, 'tree')]);
      });
    });
    expect(await srv.stop('SIGTERM')).toBe(0);

    srv = await startServer([`container=${name}`]);
    await withNbdfuse(srv.uri, fuseDir, async (disk) => {
      await run('e2fsck', ['-fn', disk]);
      await withLoopMount(
        disk,
        mnt,
        async () => {
          expect(readFileSync(join(mnt, 'hello.txt'), 'utf8')).toBe('hello from swift\n');
          expect(await treeChecksums(join(mnt, 'tree'))).toEqual(expected);
        },
        'ro',
      );
    });
    expect(await srv.stop('SIGTERM')).toBe(0);
  });
});
