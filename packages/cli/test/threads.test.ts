import { describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Plugin } from '@nbdts/plugin-api';
import { parseArgs } from '../src/index.ts';
import { defaultWorkers, loadThreadPlugin, threadSpec } from '../src/thread-plugin.ts';
import fixture, { attached } from './fixtures/threads-plugin.ts';

const FIXTURE_URL = new URL('./fixtures/threads-plugin.ts', import.meta.url).href;

function logs() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(c, _e, cb) {
      for (const l of String(c).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

const plain: Plugin<unknown, unknown> = { name: 'plain', open: () => ({}), getSize: () => 1, pread() {} };

describe('--workers', () => {
  it('parses a thread count and refuses anything else', () => {
    expect(parseArgs(['--workers', '3', 'memory']).workers).toBe(3);
    expect(parseArgs(['memory', '--workers=0']).workers).toBe(0);
    expect(parseArgs(['memory']).workers).toBeUndefined();
    expect(() => parseArgs(['--workers', 'many', 'memory'])).toThrow("--workers: 'many' is not a number of threads");
    expect(() => parseArgs(['--workers', '65', 'memory'])).toThrow('0 to 64');
  });

  it('defaults to one thread per CPU, none on a single CPU', () => {
    const n = defaultWorkers();
    expect(n === 0 || (n >= 2 && n <= 4)).toBe(true);
  });

  it('asks a plugin with thread support to share, and names the loader and the module', () => {
    const { log } = logs();
    const spec = threadSpec(fixture as Plugin<unknown, unknown>, FIXTURE_URL, { workers: 3, filters: [] }, log);
    expect(spec).toEqual({
      count: 3,
      loader: pathToFileURL(fileURLToPath(new URL('../src/thread-plugin.ts', import.meta.url))).href,
      data: { specifier: FIXTURE_URL, shared: { n: 1 } },
    });
  });

  it('serves on the main thread without plugin support, with filters, when declined or with 0, and says why when asked', () => {
    const { log, lines } = logs();
    expect(threadSpec(plain, 'x', { workers: 2, filters: [] }, log)).toBeUndefined();
    expect(lines.at(-1)).toMatchObject({
      level: 30,
      msg: '--workers: serving on the main thread: plugin plain does not support worker threads',
    });
    expect(threadSpec(fixture as Plugin<unknown, unknown>, 'x', { filters: ['f'] }, log)).toBeUndefined();
    expect(lines.at(-1)).toMatchObject({
      level: 20,
      msg: 'serving on the main thread: filters run on the main thread only',
    });
    const declining = { ...plain, threads: { share: () => undefined, attach() {} } };
    expect(threadSpec(declining, 'x', { workers: 2, filters: [] }, log)).toBeUndefined();
    expect(lines.at(-1)!.msg).toContain('cannot share its data');
    let shared = 0;
    const counting = {
      ...plain,
      threads: {
        share: () => {
          shared++;
          return {};
        },
        attach() {},
      },
    };
    expect(threadSpec(counting, 'x', { workers: 0, filters: [] }, log)).toBeUndefined();
    expect(shared).toBe(0);
  });

  it("loadThreadPlugin imports the module and attaches the plugin to the main thread's share", async () => {
    const p = await loadThreadPlugin({ specifier: FIXTURE_URL, shared: { n: 42 } });
    expect(p.name).toBe('threads-fixture');
    expect(attached).toEqual([{ n: 42 }]);
    await expect(
      loadThreadPlugin({
        specifier: pathToFileURL(fileURLToPath(new URL('./fixtures/jsplugin.js', import.meta.url))).href,
        shared: 1,
      }),
    ).rejects.toThrow('no plugin with threads support');
  });
});
