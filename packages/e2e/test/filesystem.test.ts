// A real filesystem on the export: nbdfuse exposes it as a file, the kernel
// loop-mounts ext4 on it, we copy a tree in, fsck it, and read it back after a
// remount (memory) and after a server restart (file plugin). Needs root and /dev/fuse.
import { existsSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  requireTool, run, runOk, sparseFile, spawnBackground, startServer, tempDir, treeChecksums, waitFor,
  writeRandomTree, type BackgroundProcess, type ServerProcess, type TempDir,
} from '@nbdts/testkit';

let dir: TempDir;
let want: Record<string, string>;
beforeAll(async () => {
  for (const t of ['nbdfuse', 'fusermount3', 'mkfs.ext4', 'e2fsck', 'mount', 'umount', 'rsync', '/dev/fuse']) requireTool(t);
  dir = tempDir();
  writeRandomTree(dir.join('tree'), 40, 1 << 20, (p) => mkdirSync(p, { recursive: true }));
  // (lost+found, made by mkfs, is an empty directory: it adds no entries.)
  want = await treeChecksums(dir.join('tree'));
  expect(Object.keys(want)).toHaveLength(40);
});
afterAll(() => dir?.cleanup());

/**
 * nbdfuse MNT URI (MNT/nbd is the export as a file), run fn(MNT/nbd), then
 * unmount. The unmount and nbdfuse's exit status are checked only when fn
 * succeeded, so a cleanup problem never hides the real failure.
 */
async function withFuse(uri: string, mnt: string, fn: (img: string) => Promise<void>): Promise<void> {
  mkdirSync(mnt, { recursive: true });
  const fuse: BackgroundProcess = spawnBackground(requireTool('nbdfuse'), [mnt, uri]);
  let ok = false;
  try {
    await waitFor(`nbdfuse to expose ${mnt}/nbd`, () => {
      if (fuse.gone) throw new Error(`nbdfuse exited: ${fuse.stderr()}`);
      return existsSync(`${mnt}/nbd`);
    });
    await fn(`${mnt}/nbd`);
    ok = true;
  } finally {
    // The loop device over MNT/nbd is released a little after umount returns,
    // and until then the FUSE mount is busy: retry before forcing.
    let r = await run('fusermount3', ['-u', mnt]);
    for (let i = 0; r.code !== 0 && !fuse.gone && i < 50; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await run('fusermount3', ['-u', mnt]);
    }
    if (r.code !== 0) await run('fusermount3', ['-uz', mnt]);
    // After a clean unmount nbdfuse exits by itself (status 0): give it time before signalling.
    if (r.code === 0) await waitFor('nbdfuse to exit', () => fuse.gone, 10_000).catch(() => {});
    const code = await fuse.stop('SIGTERM', 10_000);
    if (ok) {
      expect(r.code, `fusermount3 -u: ${r.stderr}`).toBe(0);
      expect(code, `nbdfuse: ${fuse.stderr()}`).toBe(0);
    }
  }
}

/** mount -o loop IMG DIR, run fn, always unmount. */
async function withLoopMount(img: string, mnt: string, fn: () => Promise<void>): Promise<void> {
  mkdirSync(mnt, { recursive: true });
  await runOk('mount', ['-o', 'loop', img, mnt]);
  try {
    await fn();
  } finally {
    const r = await run('umount', [mnt]);
    if (r.code !== 0) await run('umount', ['-l', mnt]);
  }
}

async function fsckClean(img: string): Promise<void> {
  const r = await run('e2fsck', ['-fn', img]);
  expect(r.code, `e2fsck found problems:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

describe('ext4 over nbdfuse: memory size=256M', () => {
  let srv: ServerProcess;
  beforeAll(async () => { srv = await startServer(['memory', 'size=256M']); });
  afterAll(async () => { await srv?.stop(); });

  it('mkfs, copy a tree, fsck clean, remount and read back', async () => {
    await withFuse(srv.uri, dir.join('fuse-mem'), async (img) => {
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
      await withFuse(srv.uri, dir.join('fuse-file'), async (img) => {
        await runOk('mkfs.ext4', ['-q', '-F', img], { timeoutMs: 60_000 });
        await withLoopMount(img, dir.join('mnt-file'), async () => {
          await runOk('rsync', ['-a', `${dir.join('tree')}/`, `${dir.join('mnt-file')}/`], { timeoutMs: 60_000 });
        });
      });
      expect(await srv.stop('SIGTERM'), `server stderr:\n${srv.stderr()}`).toBe(0);
      await fsckClean(backing); // the backing file itself is a clean filesystem

      srv = await startServer(['file', `file=${backing}`]);
      await withFuse(srv.uri, dir.join('fuse-file'), async (img) => {
        await withLoopMount(img, dir.join('mnt-file'), async () => {
          expect(await treeChecksums(dir.join('mnt-file'))).toEqual(want);
        });
      });
    } finally {
      await srv.stop();
    }
  });
});
