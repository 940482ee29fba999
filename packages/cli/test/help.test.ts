import { describe, expect, it } from 'vitest';
import { definePlugin, param, z } from '@nbdts/plugin-api';
import type { Plugin } from '@nbdts/plugin-api';
import {
  describeSchema,
  renderDumpConfig,
  renderDumpPlugin,
  renderGeneralHelp,
  renderPluginHelp,
  renderVersion,
  VERSION,
} from '../src/index.ts';
import fixture from './fixtures/plugin.ts';

const sample = definePlugin({
  name: 'sample',
  version: '9.9',
  description: 'a sample plugin',
  usage: 'Example: nbdts sample 1G',
  magicConfigKey: 'size',
  config: z.object({
    size: param.size().describe('Size of the disk'),
    cacheSize: param
      .size()
      .default(64 * 1024 * 1024)
      .describe('Cache size'),
    authUrl: param.url().describe('Where to log in'),
    password: param.secret().optional().describe('Password'),
    level: z.enum(['low', 'high']).default('low'),
    retries: param.int(0, 9).prefault('3').describe('Retries'),
    timeout: param.int().meta({ type: 'SECONDS', defaultText: 'one minute' }).optional(),
    count: z.string().pipe(z.coerce.number()).optional(),
  }),
  open: () => ({}),
  getSize: () => 0,
  pread: () => {},
}) as Plugin<unknown, unknown>;

describe('describeSchema', () => {
  it('reads types, defaults, descriptions and choices from zod', () => {
    const params = describeSchema(sample.config)!;
    const by = Object.fromEntries(params.map((p) => [p.flag, p]));
    expect(params.map((p) => p.flag)).toEqual([
      'size',
      'cache-size',
      'auth-url',
      'password',
      'level',
      'retries',
      'timeout',
      'count',
    ]);
    expect(by.size).toMatchObject({ key: 'size', type: 'SIZE', required: true, description: 'Size of the disk' });
    expect(by['cache-size']).toMatchObject({ type: 'SIZE', required: false, defaultText: '64M' });
    expect(by['auth-url']).toMatchObject({ type: 'URL', required: true });
    expect(by.password).toMatchObject({ type: 'SECRET', required: false });
    expect(by.level).toMatchObject({ type: 'low|high', choices: ['low', 'high'], defaultText: 'low', required: false });
    expect(by.retries).toMatchObject({ type: 'INT', defaultText: '3' });
    expect(by.timeout).toMatchObject({ type: 'SECONDS', defaultText: 'one minute' });
    expect(by.count).toMatchObject({ type: 'NUMBER', required: false });
  });

  it('returns undefined for a schema that is not an object', () => {
    expect(describeSchema(z.string())).toBeUndefined();
    expect(describeSchema(undefined)).toBeUndefined();
  });
});

describe('renderPluginHelp', () => {
  it('lists parameters in kebab-case with types, required markers and defaults, then usage', () => {
    const text = renderPluginHelp(sample);
    expect(text).toContain('plugin: sample 9.9\na sample plugin\n');
    expect(text).toContain('Usage: nbdts [OPTIONS] sample [size=]SIZE [KEY=VALUE ...]');
    expect(text).toMatch(/^ {2}size=SIZE +\(required\) Size of the disk$/m);
    expect(text).toMatch(/^ {2}cache-size=SIZE +Cache size \[default: 64M\]$/m);
    expect(text).toMatch(/^ {2}auth-url=URL +\(required\) Where to log in$/m);
    expect(text).toMatch(/^ {2}level=low\|high +\[default: low\]$/m);
    expect(text).toMatch(/^ {2}timeout=SECONDS +\[default: one minute\]$/m);
    expect(text.trimEnd().endsWith('Example: nbdts sample 1G')).toBe(true);
  });

  it('says so when a plugin takes no parameters', () => {
    const bare = definePlugin({ name: 'bare', open: () => 0, getSize: () => 0, pread: () => {} }) as Plugin<
      unknown,
      unknown
    >;
    expect(renderPluginHelp(bare)).toContain('Parameters: none');
  });
});

describe('--dump-plugin and friends', () => {
  it('prints key=value facts about the plugin', () => {
    const text = renderDumpPlugin(fixture as Plugin<unknown, unknown>, '/x/plugin.ts');
    const facts = Object.fromEntries(
      text
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(facts).toMatchObject({
      path: '/x/plugin.ts',
      name: 'fixture',
      version: '1.2.3',
      description: 'test fixture RAM disk',
      magic_config_key: 'size',
      concurrency: 'unlimited',
      has_pread: '1',
      has_pwrite: '1',
      has_flush: '1',
      has_trim: '0',
      has_zero: '0',
      has_extents: '0',
      has_cache: '0',
      has_config: '1',
      has_config_complete: '1',
      has_get_ready: '1',
      params: 'size,label,mode,block-count,sparse,password,fail-at,slow-unload',
      has_unload: '1',
    });
  });

  it('prints facts about nbdts itself', () => {
    const text = renderDumpConfig();
    expect(text).toContain(`version=${VERSION}\n`);
    expect(text).toContain('name=nbdts\n');
    expect(text).toMatch(/^binary=.*bin\/nbdts\.js$/m);
  });

  it('prints versions and general help', () => {
    expect(renderVersion()).toBe(`nbdts ${VERSION}\n`);
    expect(renderVersion(sample)).toBe(`nbdts ${VERSION}\nsample 9.9\n`);
    for (const flag of [
      '--port',
      '--ipaddr',
      '--unix',
      '--single',
      '--readonly',
      '--exportname',
      '--pidfile',
      '--foreground',
      '--run',
      '--exit-with-parent',
      '--verbose',
      '--log-level',
      '--print-uri',
      '--version',
      '--help',
      '--dump-plugin',
      '--dump-config',
      '--filter',
      '--workers',
    ]) {
      expect(renderGeneralHelp()).toContain(flag);
    }
  });
});
