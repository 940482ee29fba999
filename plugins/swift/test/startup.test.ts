// Start-up errors through the CLI (`nbdts swift ...`): each must exit 1 with
// one line on stderr that names the problem and what to do about it, with no
// stack trace and never the password.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nbdtsBin, run, tempDir, type RunResult } from '@nbdts/testkit';
import { closedPort, ensureSwift, uniqueName, type SwiftEnv } from './helpers.ts';

let env: SwiftEnv;
const dir = tempDir('nbdts-swift-startup-');

beforeAll(async () => {
  env = await ensureSwift();
});

afterAll(() => dir.cleanup());

/** `nbdts -U SOCK swift ...params`; the password is given on the command line so we can check it never echoes. */
function nbdts(params: string[]): Promise<RunResult> {
  return run(process.execPath, [nbdtsBin, '-U', dir.join('never.sock'), 'swift', ...params], { timeoutMs: 60_000 });
}

/** The failure contract: exit 1, one non-empty stderr line, no stack, no secret, nothing on stdout. */
function expectOneLineFailure(r: RunResult, secret: string): string {
  expect(r.timedOut).toBe(false);
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, r.stderr).toHaveLength(1);
  const line = lines[0]!;
  expect(line).toMatch(/^nbdts: swift: /);
  expect(r.stderr).not.toMatch(/^\s+at /m); // stack frames
  expect(r.stderr).not.toMatch(/Error:|\.ts:\d+|node:internal/);
  expect(r.stderr + r.stdout).not.toContain(secret);
  expect(r.stdout).toBe('');
  return line;
}

describe('nbdts swift start-up errors', { timeout: 110_000 }, () => {
  it('bad credentials: says the credentials were refused and what to check', async () => {
    const secret = `wrong-${uniqueName('pw')}`;
    const r = await nbdts([
      `container=${uniqueName('badcred')}`,
      `auth-url=${env.authUrl}`,
      `username=${env.user}`,
      `password=${secret}`,
    ]);
    const line = expectOneLineFailure(r, secret);
    expect(line).toMatch(/credentials refused/);
    expect(line).toMatch(/401/);
    expect(line).toMatch(/check .*password/);
    expect(line).toContain(env.user); // who was refused
  });

  it('missing container without size=: names the container and says to add size= or run setup', async () => {
    const name = uniqueName('missing');
    const r = await nbdts([
      `container=${name}`,
      `auth-url=${env.authUrl}`,
      `username=${env.user}`,
      `password=${env.key}`,
    ]);
    const line = expectOneLineFailure(r, env.key);
    expect(line).toContain(`container ${name} does not exist`);
    expect(line).toMatch(/add size=/);
    expect(line).toMatch(/nbdts-swift setup/);
  });

  it('unreachable auth URL: names the URL and asks whether Swift is running there', async () => {
    const secret = `pw-${uniqueName('unreach')}`;
    const url = `http://127.0.0.1:${await closedPort()}/auth/v1.0`;
    const t0 = Date.now();
    const r = await nbdts([
      `container=${uniqueName('unreach')}`,
      `auth-url=${url}`,
      `username=${env.user}`,
      `password=${secret}`,
    ]);
    const line = expectOneLineFailure(r, secret);
    expect(line).toContain(url);
    expect(line).toMatch(/ECONNREFUSED/);
    expect(line).toMatch(/is Swift running and reachable/);
    // Not retried for a minute at start-up: it fails fast (allow for start-up on a busy box).
    expect(Date.now() - t0).toBeLessThan(45_000);
  });

  // Port 1 (like 6000, 6665-6669, 10080, ...) is a WHATWG fetch "bad port", which fetch refused
  // without connecting. The client no longer uses fetch: such a port is tried like any other, so
  // a Swift listening there works, and nothing listening is the usual refused connection.
  it('auth URL on a fetch "bad port" (127.0.0.1:1) is connected to like any other port', async () => {
    const secret = `pw-${uniqueName('badport')}`;
    const url = 'http://127.0.0.1:1/auth/v1.0';
    const r = await nbdts([
      `container=${uniqueName('badport')}`,
      `auth-url=${url}`,
      `username=${env.user}`,
      `password=${secret}`,
    ]);
    const line = expectOneLineFailure(r, secret);
    expect(line).toContain(url);
    expect(line).toMatch(/ECONNREFUSED/);
    expect(line).toMatch(/is Swift running and reachable/);
    expect(line).not.toMatch(/bad port|fetch failed/);
  });

  it('a password given as env:NAME is not echoed either when refused', async () => {
    const secret = `envpw-${uniqueName('x')}`;
    const r = await run(
      process.execPath,
      [
        nbdtsBin,
        '-U',
        dir.join('never2.sock'),
        'swift',
        `container=${uniqueName('envpw')}`,
        `auth-url=${env.authUrl}`,
        `username=${env.user}`,
        'password=env:NBDTS_TEST_BAD_PW',
      ],
      { timeoutMs: 60_000, env: { NBDTS_TEST_BAD_PW: secret } },
    );
    expect(expectOneLineFailure(r, secret)).toMatch(/credentials refused/);
  });
});
