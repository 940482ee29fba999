import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, Secret, definePlugin, param, z } from '@nbdts/plugin-api';
import type { Plugin } from '@nbdts/plugin-api';
import { parsePluginParams, redactConfig, describeSchema, splitParams } from '../src/index.ts';
import fixture from './fixtures/plugin.ts';
import filter from './fixtures/filter.ts';

const plugin = fixture as Plugin<unknown, unknown>;

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('splitParams', () => {
  it('maps kebab-case and snake_case keys to camelCase', () => {
    expect(splitParams('p', ['block-count=3', 'fail_at=ready'])).toEqual([
      { flag: 'block-count', key: 'blockCount', value: '3' },
      { flag: 'fail-at', key: 'failAt', value: 'ready' },
    ]);
  });

  it('keeps everything after the first = in the value', () => {
    expect(splitParams('p', ['url=http://h/?a=b'])[0]!.value).toBe('http://h/?a=b');
  });

  it('sends a bare argument to the magic key', () => {
    expect(splitParams('p', ['disk.img'], 'file')).toEqual([{ flag: 'file', key: 'file', value: 'disk.img' }]);
    expect(splitParams('p', ['/a/b=c'], 'file')[0]!.value).toBe('/a/b=c');
  });

  it('refuses duplicates and bare arguments without a magic key', () => {
    expect(() => splitParams('p', ['size=1', 'size=2'])).toThrow("p: parameter 'size' given more than once");
    expect(() => splitParams('p', ['1M', 'size=2'], 'size')).toThrow("p: parameter 'size' given more than once");
    expect(() => splitParams('p', ['oops'])).toThrow(
      "p: 'oops' is not key=value and this plugin has no magic parameter",
    );
  });
});

describe('parsePluginParams', () => {
  it('parses with the schema, applying defaults', async () => {
    const { config } = await parsePluginParams(plugin, ['1M', 'block-count=7', 'label=hi']);
    expect(config).toEqual({ size: 1048576, blockCount: 7, label: 'hi', mode: 'zero', sparse: true });
  });

  it('reports each kind of problem as one line naming the parameter', async () => {
    expect(await errorOf(parsePluginParams(plugin, ['size=abc']))).toBe(
      "fixture: size: cannot parse 'abc' as a size (examples: 4096, 512M, 1G, 1.5T)",
    );
    expect(await errorOf(parsePluginParams(plugin, ['1M', 'foo=1']))).toBe(
      "fixture: unknown parameter 'foo' (see nbdts fixture --help)",
    );
    expect(await errorOf(parsePluginParams(plugin, ['label=x']))).toBe(
      "fixture: missing required parameter 'size' (see nbdts fixture --help)",
    );
    expect(await errorOf(parsePluginParams(plugin, ['1M', 'block-count=x']))).toBe(
      "fixture: block-count: expected a whole number, got 'x'",
    );
    expect(await errorOf(parsePluginParams(plugin, ['1M', 'sparse=maybe']))).toBe(
      "fixture: sparse: expected true/false, yes/no, on/off or 1/0, got 'maybe'",
    );
    expect(await errorOf(parsePluginParams(plugin, ['1M', 'mode=ones']))).toMatch(
      /^fixture: mode: .*"zero"\|"pattern"/,
    );
    for (const m of [await errorOf(parsePluginParams(plugin, ['1M', 'mode=ones']))]) expect(m).not.toContain('\n');
  });

  it('rejects parameters for a plugin without a schema', async () => {
    const bare = definePlugin({ name: 'bare', open: () => 0, getSize: () => 0, pread: () => {} }) as Plugin<
      unknown,
      unknown
    >;
    expect(await parsePluginParams(bare, [])).toEqual({ config: {}, filterConfigs: [] });
    expect(await errorOf(parsePluginParams(bare, ['a=b']))).toBe(
      "bare: unknown parameter 'a' (this plugin takes no parameters)",
    );
  });

  it('gives filter parameters to the filter', async () => {
    const r = await parsePluginParams(plugin, ['1M', 'delay-ms=5'], [filter]);
    expect(r.filterConfigs).toEqual([{ delayMs: 5 }]);
    expect(r.config).not.toHaveProperty('delayMs');
    expect(await errorOf(parsePluginParams(plugin, ['1M', 'delay-ms=5000'], [filter]))).toBe(
      'passthrough: delay-ms: must be between 0 and 1000, got 5000',
    );
  });

  describe('secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbdts-cli-test-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('reads +FILE without the trailing newline', async () => {
      writeFileSync(join(dir, 'pw'), 'from-file\n');
      const { config } = await parsePluginParams(plugin, ['1M', `password=+${join(dir, 'pw')}`]);
      const pw = (config as { password: Secret }).password;
      expect(pw).toBeInstanceOf(Secret);
      expect(pw.reveal()).toBe('from-file');
    });

    it('reads env:NAME', async () => {
      process.env.NBDTS_TEST_PW = 'from-env';
      const { config } = await parsePluginParams(plugin, ['1M', 'password=env:NBDTS_TEST_PW']);
      expect((config as { password: Secret }).password.reveal()).toBe('from-env');
    });

    it('reports unreadable secrets as one line', async () => {
      expect(await errorOf(parsePluginParams(plugin, ['1M', 'password=env:NBDTS_NOT_SET_ANYWHERE']))).toBe(
        'fixture: password: environment variable NBDTS_NOT_SET_ANYWHERE is not set',
      );
      expect(await errorOf(parsePluginParams(plugin, ['1M', `password=+${join(dir, 'missing')}`]))).toMatch(
        /^fixture: password: cannot read .*missing: ENOENT/,
      );
    });

    it('never shows a secret in redacted config', async () => {
      const { config } = await parsePluginParams(plugin, ['1M', 'password=hunter2']);
      const text = JSON.stringify(redactConfig(config, describeSchema(plugin.config)));
      expect(text).not.toContain('hunter2');
      expect(text).toContain('"password":"[secret]"');
      // Even a plugin that unwraps the secret in its schema is masked by type.
      const leaky = z.object({ token: param.secret().transform((s) => s.reveal()) });
      const parsed = await leaky.parseAsync({ token: 'hunter2' });
      expect(JSON.stringify(redactConfig(parsed, describeSchema(leaky)))).not.toContain('hunter2');
    });
  });
});
