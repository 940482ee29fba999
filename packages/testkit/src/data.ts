import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, openSync, writeSync, closeSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Write `size` random bytes to `path` (1 MiB at a time, so large files stay cheap on memory). */
export function writeRandomFile(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.allocUnsafe(Math.min(size, 1 << 20));
    for (let done = 0; done < size;) {
      const n = Math.min(chunk.length, size - done);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** SHA-256 of a file, hex. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (b) => h.update(b))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** relative path -> sha256 for every regular file under `root`, sorted by path. */
export async function treeChecksums(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) out[relative(root, p)] = await sha256File(p);
    }
  };
  await walk(root);
  return out;
}

/** A directory tree of random files (`files` files spread over a few subdirectories). */
export function writeRandomTree(root: string, files: number, maxSize: number, mkdir: (p: string) => void): void {
  for (let i = 0; i < files; i++) {
    const sub = join(root, `d${i % 5}`, `e${i % 3}`);
    mkdir(sub);
    // Sizes vary so some files are tiny, some span many blocks, some are not block-aligned.
    const size = i === 0 ? 0 : Math.floor((maxSize * ((i * 7919) % 101)) / 100) + (i % 13);
    writeRandomFile(join(sub, `f${i}.bin`), size);
  }
}

/** Create (or replace) `path` as an all-zero sparse file of `size` bytes. */
export function sparseFile(path: string, size: number): void {
  closeSync(openSync(path, 'w'));
  truncateSync(path, size);
}
