// The command as users run it: node bin/nbdts.js (type stripping, process exit codes, stderr lines).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURE, JS_FIXTURE, runNbdts } from './helpers.ts';
import { VERSION } from '../src/index.ts';

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

describe('nbdts process', () => {
  it('--version', async () => {
    const r = await runNbdts(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `nbdts ${VERSION}\n`, stderr: '' });
    const p = await runNbdts(['--version', FIXTURE]);
    expect(p.stdout).toBe(`nbdts ${VERSION}\nfixture 1.2.3\n`);
  });

  it('--help and PLUGIN --help', async () => {
    const r = await runNbdts(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: nbdts \[OPTIONS\] PLUGIN/);
    const p = await runNbdts([FIXTURE, '--help']);
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/^ {2}size=SIZE +\(required\) Size of the disk$/m);
    expect(p.stdout).toContain('This is the usage text of the fixture.');
  });

  it('--dump-plugin of a .js plugin', async () => {
    const r = await runNbdts(['--dump-plugin', JS_FIXTURE]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`path=${JS_FIXTURE}\nname=jsfixture\nversion=0.0.1\n`);
    expect(r.stdout).toContain('has_pwrite=0\n');
  });

  it('--dump-config', async () => {
    const r = await runNbdts(['--dump-config']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('name=nbdts\n');
  });

  it.each([
    [['size=abc'], "nbdts: fixture: size: cannot parse 'abc' as a size (examples: 4096, 512M, 1G, 1.5T)"],
    [['1M', 'foo=bar'], "nbdts: fixture: unknown parameter 'foo' (see nbdts fixture --help)"],
    [['label=x'], "nbdts: fixture: missing required parameter 'size' (see nbdts fixture --help)"],
    [['size=1M', 'size=2M'], "nbdts: fixture: parameter 'size' given more than once"],
    [['1M', 'fail-at=config'], 'nbdts: fixture: refusing this configuration'],
    [['1M', 'fail-at=ready'], 'nbdts: fixture: not ready'],
    [['1M', '--bogus'], "nbdts: unknown option '--bogus' (see nbdts --help)"],
  ])('bad start %j exits 1 with one line', async (params, line) => {
    const r = await runNbdts([FIXTURE, ...params]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([line]);
    expect(r.stdout).toBe('');
  });

  it('unknown plugins and options are one line too', async () => {
    const r = await runNbdts(['no-such-plugin-xyz']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^nbdts: plugin 'no-such-plugin-xyz' not found/);
    const p = await runNbdts(['-p', 'x', 'memory']);
    expect(lines(p.stderr)).toEqual([
      "nbdts: --port: 'x' is not a port number (0 to 65535; 0 picks a free port) (see nbdts --help)",
    ]);
    const n = await runNbdts([]);
    expect(n.code).toBe(1);
    expect(n.stderr).toMatch(/^nbdts: no plugin given/);
  });

  it("reads a secret given as '-' from a stdin pipe", async () => {
    // fail-at=ready stops after configComplete, which checks the password.
    const env = { ...process.env, FIXTURE_EXPECT_PASSWORD: 'hunter2' };
    const ok = await runNbdts([FIXTURE, '1M', 'password=-', 'fail-at=ready'], { env, input: 'hunter2\n' });
    expect(lines(ok.stderr)).toEqual(['nbdts: fixture: not ready']);
    const bad = await runNbdts([FIXTURE, '1M', 'password=-', 'fail-at=ready'], { env, input: 'wrong\n' });
    expect(lines(bad.stderr)).toEqual(['nbdts: fixture: wrong password']);
  });

  it('shows a stack trace for unexpected errors only with -v', async () => {
    const quiet = await runNbdts([FIXTURE, '1M', 'fail-at=crash']);
    expect(quiet.code).toBe(1);
    expect(lines(quiet.stderr)).toEqual(['nbdts: boom']);
    const loud = await runNbdts(['-v', FIXTURE, '1M', 'fail-at=crash']);
    expect(loud.code).toBe(1);
    expect(loud.stderr).toContain('nbdts: boom\nError: boom\n    at ');
  });

  it('never logs a secret, even at debug level', async () => {
    const r = await runNbdts(['-v', FIXTURE, '1M', 'password=hunter2', 'fail-at=ready']);
    expect(r.stderr).toContain('"password":"[secret]"');
    expect(r.stderr).not.toContain('hunter2');
  });

  it('finds an npm package nbdts-plugin-NAME installed in the current directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbdts-cli-pkg-'));
    try {
      const pkg = join(dir, 'node_modules', 'nbdts-plugin-foo');
      mkdirSync(pkg, { recursive: true });
      writeFileSync(
        join(pkg, 'package.json'),
        JSON.stringify({ name: 'nbdts-plugin-foo', version: '2.0.0', type: 'module', main: 'index.js' }),
      );
      writeFileSync(
        join(pkg, 'index.js'),
        "export default { name: 'foo', version: '2.0.0', open: () => ({}), getSize: () => 0, pread: () => {} };\n",
      );
      const r = await runNbdts(['--dump-plugin', 'foo'], { cwd: dir });
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`path=${join(pkg, 'index.js')}\nname=foo\nversion=2.0.0\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
