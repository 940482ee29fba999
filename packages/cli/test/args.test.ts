import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../src/index.ts';

describe('parseArgs', () => {
  it('takes options before the plugin and params after it', () => {
    const o = parseArgs(['-p', '1234', '-r', '-e', 'disk', 'memory', 'size=1M', 'x=y']);
    expect(o).toMatchObject({
      port: 1234,
      readonly: true,
      exportname: 'disk',
      plugin: 'memory',
      params: ['size=1M', 'x=y'],
    });
  });

  it('accepts options after the plugin name, as nbdkit does', () => {
    const o = parseArgs(['memory', '1M', '-r', '--filter=a', '--filter', 'b', '--run', 'echo $uri']);
    expect(o).toMatchObject({
      plugin: 'memory',
      params: ['1M'],
      readonly: true,
      filters: ['a', 'b'],
      run: 'echo $uri',
    });
  });

  it('routes PLUGIN --help to plugin help', () => {
    expect(parseArgs(['memory', '--help'])).toMatchObject({ plugin: 'memory', help: true, params: [] });
    expect(parseArgs(['--help'])).toMatchObject({ help: true });
    expect(parseArgs(['--help']).plugin).toBeUndefined();
  });

  it('keeps parameter values as strings (no number parsing)', () => {
    expect(parseArgs(['memory', '0100', 'size=0x10']).params).toEqual(['0100', 'size=0x10']);
  });

  it('accepts -U - and long forms', () => {
    const o = parseArgs(['--unix', '-', '--pidfile=/tmp/p', '--exit-with-parent', '--print-uri', 'file', 'disk.img']);
    expect(o).toMatchObject({
      unix: '-',
      pidfile: '/tmp/p',
      exitWithParent: true,
      printUri: true,
      plugin: 'file',
      params: ['disk.img'],
    });
  });

  it('treats everything after -- as parameters', () => {
    expect(parseArgs(['file', '--', '-odd-name', '-r']).params).toEqual(['-odd-name', '-r']);
  });

  it('groups short flags', () => {
    expect(parseArgs(['-rfv', 'memory'])).toMatchObject({
      readonly: true,
      foreground: true,
      verbose: true,
      logLevel: 'debug',
    });
  });

  it('maps --log-level and -v', () => {
    expect(parseArgs(['memory']).logLevel).toBe('info');
    expect(parseArgs(['--log-level', 'warn', '-v', 'memory']).logLevel).toBe('warn');
    expect(() => parseArgs(['--log-level=loud', 'memory'])).toThrow("--log-level: 'loud' is not one of");
  });

  it('rejects unknown options, before or after the plugin', () => {
    expect(() => parseArgs(['--bogus', 'memory'])).toThrow(new UsageError("unknown option '--bogus'"));
    expect(() => parseArgs(['memory', '-Z'])).toThrow(new UsageError("unknown option '-Z'"));
  });

  it('rejects bad ports and missing values', () => {
    expect(() => parseArgs(['-p', 'http', 'memory'])).toThrow("--port: 'http' is not a port number");
    expect(() => parseArgs(['-p', '70000', 'memory'])).toThrow('is not a port number');
    expect(parseArgs(['-p', '0', 'memory']).port).toBe(0);
    expect(() => parseArgs(['memory', '--run'])).toThrow('option --run needs a value');
  });

  it('rejects combinations nbdkit refuses', () => {
    expect(() => parseArgs(['-U', '/tmp/s', '-p', '1', 'memory'])).toThrow('-U cannot be combined');
    expect(() => parseArgs(['-s', '--run', 'true', 'memory'])).toThrow('-s serves stdin/stdout');
  });

  it('parses information options without a plugin', () => {
    expect(parseArgs(['--version'])).toMatchObject({ version: true });
    expect(parseArgs(['--version']).plugin).toBeUndefined();
    expect(parseArgs(['--dump-config']).dumpConfig).toBe(true);
    expect(parseArgs(['--dump-plugin', 'memory'])).toMatchObject({ dumpPlugin: true, plugin: 'memory' });
  });
});
