// A real filesystem on the export: nbdfuse exposes it as a file, the kernel
// loop-mounts ext4 on it, we copy a tree in, fsck it, and read it back after a
// remount (memory) and after a server restart (file plugin). Needs root and /dev/fuse.
import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  requireTool,
  run,
  runOk,
  sparseFile,
  startServer,
  tempDir,
  treeChecksums,
  withLoopMount,
  withNbdfuse,
  writeRandomTree,
  type ServerProcess,
  type TempDir,
} from '@nbdts/testkit';

let dir: TempDir;
let want: Record<string, string>;
beforeAll(async () => {
  for (const t of ['nbdfuse', 'fusermount3', 'mkfs.ext4', 'e2fsck', 'mount', 'umount', 'rsync', '/dev/fuse'])
    requireTool(t);
  dir = tempDir();
  writeRandomTree(dir.join('tree'), 40, 1 << 20, (p) => mkdirSync(p, { recursive: true }));
  // (lost+found, made by mkfs, is an empty directory: it adds no entries.)
  want = await treeChecksums(dir.join('tree'));
  expect(Object.keys(want)).toHaveLength(40);
});
afterAll(() => dir?.cleanup());

async function fsckClean(img: string): Promise<void> {
  const r = await run('e2fsck', ['-fn', img]);
  expect(r.code, `e2fsck found problems:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

describe('ext4 over nbdfuse: memory size=256M', () => {
  let srv: ServerProcess;
  beforeAll(async () => {
    srv = await startServer(['memory', 'size=256M']);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('mkfs, copy a tree, fsck clean, remount and read back', async () => {
    await withNbdfuse(srv.uri, dir.join('fuse-mem'), async (img) => {
      await runOk('mkfs.ext4', ['-q', '-F', img], { timeoutMs: 60_000 });
      await withLoopMount(img, dir.join('mnt-mem'), async () => {
        await runOk('rsync', ['-a', `${dir.join('tree')}/`, `${dir.join('mnt-mem')}/`], { timeoutMs: 60_000 });
      });
      await fsckClean(img);
      await withLoopMount(img, dir.join('mnt-mem'), async () => {
        expect(await treeChecksums(dir.join('mnt-mem'))).toEqual(want);
      });
    });
  });
});

describe('ext4 over nbdfuse: file plugin across a server restart', () => {
  it('the filesystem survives SIGTERM and a new server on the same file', async () => {
    const backing = dir.join('disk.img');
    sparseFile(backing, 256 << 20);
    let srv = await startServer(['file', `file=${backing}`]);
    try {
      await withNbdfuse(srv.uri, dir.join('fuse-file'), async (img) => {
        await runOk('mkfs.ext4', ['-q', '-F', img], { timeoutMs: 60_000 });
        await withLoopMount(img, dir.join('mnt-file'), async () => {
          await runOk('rsync', ['-a', `${dir.join('tree')}/`, `${dir.join('mnt-file')}/`], { timeoutMs: 60_000 });
        });
      });
      expect(await srv.stop('SIGTERM'), `server stderr:\n${srv.stderr()}`).toBe(0);
      await fsckClean(backing); // the backing file itself is a clean filesystem

      srv = await startServer(['file', `file=${backing}`]);
      await withNbdfuse(srv.uri, dir.join('fuse-file'), async (img) => {
        await withLoopMount(img, dir.join('mnt-file'), async () => {
          expect(await treeChecksums(dir.join('mnt-file'))).toEqual(want);
        });
      });
    } finally {
      await srv.stop();
    }
  });
});
