import { describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Filter, Plugin } from '@nbdts/plugin-api';
import { parseArgs } from '../src/index.ts';
import { defaultWorkers, loadThreadStack, threadSpec } from '../src/thread-plugin.ts';
import type { Loaded } from '../src/plugin-loader.ts';
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

const at = (value: Plugin<unknown, unknown>, specifier = 'x') => ({ value, specifier });

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
    const spec = threadSpec(at(fixture as Plugin<unknown, unknown>, FIXTURE_URL), [], { workers: 3 }, log);
    expect(spec).toEqual({
      count: 3,
      loader: pathToFileURL(fileURLToPath(new URL('../src/thread-plugin.ts', import.meta.url))).href,
      data: { plugin: { specifier: FIXTURE_URL, shared: { n: 1 } }, filters: [] },
    });
  });

  it('serves on the main thread without plugin or filter support, when declined or with 0, and says why when asked', () => {
    const { log, lines } = logs();
    expect(threadSpec(at(plain), [], { workers: 2 }, log)).toBeUndefined();
    expect(lines.at(-1)).toMatchObject({
      level: 30,
      msg: '--workers: serving on the main thread: plugin plain does not support worker threads',
    });
    const stateful: Loaded<Filter<unknown, unknown>> = { value: { name: 'stateful' }, path: 'f', specifier: 'f' };
    expect(threadSpec(at(fixture as Plugin<unknown, unknown>), [stateful], {}, log)).toBeUndefined();
    expect(lines.at(-1)).toMatchObject({
      level: 20,
      msg: 'serving on the main thread: filter stateful does not support worker threads',
    });
    const declining = { ...plain, threads: { share: () => undefined, attach() {} } };
    expect(threadSpec(at(declining), [], { workers: 2 }, log)).toBeUndefined();
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
    expect(threadSpec(at(counting), [], { workers: 0 }, log)).toBeUndefined();
    expect(shared).toBe(0);
  });

  it('shares each filter that supports threads, outermost first', () => {
    const { log } = logs();
    const f = (name: string, shared: unknown): Loaded<Filter<unknown, unknown>> => ({
      value: { name, threads: { share: () => shared, attach() {} } },
      path: name,
      specifier: `file:///${name}.ts`,
    });
    const spec = threadSpec(
      at(fixture as Plugin<unknown, unknown>, FIXTURE_URL),
      [f('a', 1), f('b', { x: 2 })],
      {},
      log,
    );
    expect(spec?.data).toEqual({
      plugin: { specifier: FIXTURE_URL, shared: { n: 1 } },
      filters: [
        { specifier: 'file:///a.ts', shared: 1 },
        { specifier: 'file:///b.ts', shared: { x: 2 } },
      ],
    });
    expect(
      threadSpec(at(fixture as Plugin<unknown, unknown>), [f('a', undefined)], { workers: 2 }, log),
    ).toBeUndefined();
  });

  it("loadThreadStack imports the modules and attaches them to the main thread's share", async () => {
    const { plugin, filters } = await loadThreadStack({
      plugin: { specifier: FIXTURE_URL, shared: { n: 42 } },
      filters: [],
    });
    expect(plugin.name).toBe('threads-fixture');
    expect(filters).toEqual([]);
    expect(attached).toEqual([{ n: 42 }]);
    const example = new URL('../../../examples/read-only-filter/src/index.ts', import.meta.url).href;
    const shared = { settings: { roMode: 'refuse', roError: 'EROFS', roAfter: 0 }, left: new SharedArrayBuffer(4) };
    const withFilter = await loadThreadStack({
      plugin: { specifier: FIXTURE_URL, shared: { n: 43 } },
      filters: [{ specifier: example, shared }],
    });
    expect(withFilter.filters!.map((f) => f.name)).toEqual(['readonly']);
    await expect(
      loadThreadStack({
        plugin: {
          specifier: pathToFileURL(fileURLToPath(new URL('./fixtures/jsplugin.js', import.meta.url))).href,
          shared: 1,
        },
        filters: [],
      }),
    ).rejects.toThrow('no plugin with threads support');
  });
});
