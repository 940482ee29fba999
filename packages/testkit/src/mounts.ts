import { existsSync, mkdirSync } from 'node:fs';
import { spawnBackground, waitFor } from './background.ts';
import { run, runOk } from './run.ts';
import { requireTool } from './tools.ts';

/**
 * `nbdfuse [-r] MNT URI`, run fn(MNT/nbd), then unmount. The unmount and
 * nbdfuse's exit status are checked only when fn succeeded, so a cleanup
 * problem never hides the real failure.
 */
export async function withNbdfuse(
  uri: string,
  mnt: string,
  fn: (img: string) => Promise<void>,
  opts: { readonly?: boolean } = {},
): Promise<void> {
  mkdirSync(mnt, { recursive: true });
  const fuse = spawnBackground(requireTool('nbdfuse'), [...(opts.readonly ? ['-r'] : []), mnt, uri]);
  let cleanupProblem: string | undefined;
  try {
    await waitFor(`nbdfuse to expose ${mnt}/nbd`, () => {
      if (fuse.gone) throw new Error(`nbdfuse exited: ${fuse.stderr()}`);
      return existsSync(`${mnt}/nbd`);
    });
    await fn(`${mnt}/nbd`);
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
    if (r.code !== 0) cleanupProblem = `fusermount3 -u ${mnt} failed: ${r.stderr}`;
    else if (code !== 0) cleanupProblem = `nbdfuse exited with ${code}: ${fuse.stderr()}`;
  }
  // Reached only when fn succeeded: a failure of fn propagates from the try above instead.
  if (cleanupProblem) throw new Error(cleanupProblem);
}

/** `mount -o loop[,OPTS] IMG MNT`, run fn, always unmount (lazily if busy). */
export async function withLoopMount(img: string, mnt: string, fn: () => Promise<void>, opts = ''): Promise<void> {
  mkdirSync(mnt, { recursive: true });
  await runOk('mount', ['-o', opts ? `loop,${opts}` : 'loop', img, mnt]);
  try {
    await fn();
  } finally {
    const r = await run('umount', [mnt]);
    if (r.code !== 0) await run('umount', ['-l', mnt]);
  }
}
