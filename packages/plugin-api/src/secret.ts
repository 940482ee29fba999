import { readFileSync, readSync } from 'node:fs';
import { inspect } from 'node:util';
import { ConfigError } from './errors.ts';

/**
 * A password or key. It prints as `[secret]` everywhere (logs, JSON,
 * util.inspect, template strings); call reveal() where the value is really needed.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[secret]';
  }
  toJSON(): string {
    return '[secret]';
  }
  [inspect.custom](): string {
    return '[secret]';
  }
}

/** Read one line from a file descriptor without buffering past the newline. */
function readLineFromFd(fd: number): string {
  const bytes: number[] = [];
  const one = Buffer.alloc(1);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, one, 0, 1, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw err;
    }
    if (n === 0 || one[0] === 0x0a) break;
    bytes.push(one[0]!);
  }
  return Buffer.from(bytes).toString('utf8').replace(/\r$/, '');
}

/** Read a password typed at the terminal with echo off. */
async function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer): void => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            stdin.off('data', onData);
            resolve(text);
            return;
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            reject(new ConfigError('password entry interrupted'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
          else text += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/**
 * Resolve a secret given on the command line, in nbdkit's forms plus one:
 *   `+FILE`     read from FILE (trailing newline removed)
 *   `-`         read from standard input (prompted with echo off on a terminal)
 *   `-FD`       read one line from file descriptor FD
 *   `env:NAME`  read from environment variable NAME
 *   anything else is the secret itself (visible in `ps`: prefer the forms above).
 */
export async function resolveSecret(text: string, what = 'secret'): Promise<Secret> {
  if (text.startsWith('+')) {
    const path = text.slice(1);
    try {
      return new Secret(readFileSync(path, 'utf8').replace(/\r?\n$/, ''));
    } catch (err) {
      throw new ConfigError(`${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  }
  if (text === '-') {
    if (process.stdin.isTTY) return new Secret(await promptHidden(`${what}: `));
    return new Secret(readLineFromFd(0));
  }
  if (/^-\d+$/.test(text)) return new Secret(readLineFromFd(Number(text.slice(1))));
  if (text.startsWith('env:')) {
    const name = text.slice(4);
    const value = process.env[name];
    if (value === undefined) throw new ConfigError(`${what}: environment variable ${name} is not set`);
    return new Secret(value);
  }
  return new Secret(text);
}
