// The helpers the e2e suite relies on: a broken helper would make tests pass
// or fail for the wrong reason, so they get tests of their own.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  requireTool,
  run,
  serverCommand,
  sparseFile,
  sha256File,
  tempDir,
  unixUri,
  writeRandomFile,
} from '../src/index.ts';

describe('testkit', () => {
  it('requireTool fails, naming the Debian package, when a tool is missing', () => {
    expect(() => requireTool('xorriso-not-really')).toThrow(/missing: install the Debian package/);
    expect(requireTool('sh')).toMatch(/\/sh$/);
  });

  it('run reports exit codes and output, and kills on timeout', async () => {
    const ok = await run('sh', ['-c', 'echo out; echo err >&2; exit 7']);
    expect(ok).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n', timedOut: false });
    const slow = await run('sh', ['-c', 'sleep 30'], { timeoutMs: 200 });
    expect(slow.timedOut).toBe(true);
    expect(slow.signal).toBe('SIGKILL');
  });

  it('tempDir is private and cleaned up; data helpers write what they say', async () => {
    const d = tempDir();
    writeRandomFile(d.join('a'), 100_000);
    sparseFile(d.join('b'), 1 << 20);
    expect(await sha256File(d.join('b'))).toBe('30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58'); // 1 MiB of zeros
    expect(await sha256File(d.join('a'))).not.toBe(await sha256File(d.join('b')));
    d.cleanup();
    expect(existsSync(d.path)).toBe(false);
  });

  it('builds URIs and server commands', () => {
    expect(unixUri('/tmp/x/nbd.sock')).toBe('nbd+unix:///?socket=/tmp/x/nbd.sock');
    const c = serverCommand(['memory', '1M'], 'nbdts');
    expect(c[0]).toBe(process.execPath);
    expect(c[1]).toMatch(/packages\/cli\/bin\/nbdts\.js$/);
    expect(c.slice(2)).toEqual(['memory', '1M']);
    expect(serverCommand(['memory', '1M'], 'nbdkit')[0]).toMatch(/nbdkit$/);
  });
});
