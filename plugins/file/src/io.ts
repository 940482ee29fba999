import * as fs from 'node:fs';
import { nbdError } from '@nbdts/plugin-api';

// Positional I/O on a raw fd with plain callbacks: cheaper than FileHandle and
// safe to run in parallel, since no call moves a shared file position.

function readOnce(fd: number, buf: Buffer, pos: number, offset: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, pos, buf.length - pos, offset, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function writeOnce(fd: number, buf: Buffer, pos: number, offset: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, pos, buf.length - pos, offset, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Fill `buf` from `offset`, looping over short reads. */
export async function readFull(fd: number, buf: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await readOnce(fd, buf, done, offset + done);
    if (n === 0) {
      throw nbdError(
        'EIO',
        `unexpected end of file at offset ${offset + done}: was the file truncated while being served?`,
      );
    }
    done += n;
  }
}

/** Write all of `buf` at `offset`, looping over short writes. */
export async function writeFull(fd: number, buf: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < buf.length) done += await writeOnce(fd, buf, done, offset + done);
}

export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

const ZEROS = Buffer.alloc(1024 * 1024);

/** Write zeros over a range, a megabyte at a time: the slow path when the filesystem cannot zero. */
export async function writeZeros(fd: number, count: number, offset: number): Promise<void> {
  for (let done = 0; done < count;) {
    const n = Math.min(ZEROS.length, count - done);
    await writeFull(fd, ZEROS.subarray(0, n), offset + done);
    done += n;
  }
}
