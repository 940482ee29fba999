import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isPathLike, loadFilter, loadPlugin } from '../src/index.ts';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

describe('loadPlugin', () => {
  it('loads a TypeScript plugin by absolute path (default export)', async () => {
    const { value, path } = await loadPlugin(`${fixtures}plugin.ts`);
    expect(value.name).toBe('fixture');
    expect(path).toBe(`${fixtures}plugin.ts`);
  });

  it('loads a JavaScript plugin by relative path (named export `plugin`)', async () => {
    const rel = `./${fileURLToPath(new URL('./fixtures/jsplugin.js', import.meta.url)).slice(process.cwd().length + 1)}`;
    const { value } = await loadPlugin(rel);
    expect(value.name).toBe('jsfixture');
  });

  it('loads a built-in plugin by name when its package is installed', async () => {
    const { value, path } = await loadPlugin('memory');
    expect(value.name).toBe('memory');
    expect(path).toMatch(/plugins\/memory\/src\/index\.ts$/);
  });

  it('explains what is wrong in one line', async () => {
    await expect(loadPlugin('./does-not-exist.ts')).rejects.toThrow(/^plugin file not found: .*does-not-exist\.ts$/);
    await expect(loadPlugin('no-such-plugin-xyz')).rejects.toThrow(
      "plugin 'no-such-plugin-xyz' not found (tried no-such-plugin-xyz, nbdts-plugin-no-such-plugin-xyz, @nbdts/plugin-no-such-plugin-xyz; give a path like ./no-such-plugin-xyz.ts to load a file)",
    );
    await expect(loadPlugin('gone', { gone: '@nbdts/plugin-gone' })).rejects.toThrow(
      "plugin 'gone' is built in but its package @nbdts/plugin-gone is not installed",
    );
    await expect(loadPlugin(`${fixtures}not-a-plugin.ts`)).rejects.toThrow(/not an nbdts plugin/);
  });

  it('loads filters the same way', async () => {
    expect((await loadFilter(`${fixtures}filter.ts`)).value.name).toBe('passthrough');
    await expect(loadFilter('cow-xyz')).rejects.toThrow(/^filter 'cow-xyz' not found/);
  });

  it('tells paths from names', () => {
    for (const p of ['./a.ts', '/abs/x', 'x.js', 'x.mjs', 'a/b']) expect(isPathLike(p)).toBe(true);
    for (const n of ['memory', 'nbdts-plugin-foo', '@scope/pkg']) expect(isPathLike(n)).toBe(false);
  });
});
