// Filters through the real command line: a filter that wraps only pread
// applies whatever read callback the plugin implements (the memory plugin
// has read and pread, the file plugin pread), on worker threads and on the
// main thread; built-in filters by name. The s3 plugin: plugins/s3/test/filter.test.ts.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { nbdshOk, serverKind, startNbdts, tempDir, type ServerProcess } from '@nbdts/testkit';

const UPPER = fileURLToPath(new URL('./fixtures/upper-filter.ts', import.meta.url));
const dir = tempDir('nbdts-filter-stack-');
const servers: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  dir.cleanup();
});

async function serve(args: string[]): Promise<ServerProcess> {
  const s = await startNbdts(args);
  servers.push(s);
  return s;
}

const READBACK = `
h.pwrite(b"hello, filters", 8192)
print(bytes(h.pread(14, 8192)).decode())
`;

describe.skipIf(serverKind() === 'nbdkit')('a filter that wraps only pread', () => {
  it.each([
    ['memory (read and pread), worker threads', ['-v', '--workers', '2', `--filter=${UPPER}`, 'memory', '1M']],
    ['memory, main thread', ['-v', '--workers', '0', `--filter=${UPPER}`, 'memory', '1M']],
  ])('applies to %s', async (name, args) => {
    const s = await serve(args);
    expect((await nbdshOk(READBACK, s.uri)).trim()).toBe('HELLO, FILTERS');
    // The stack really ran where the case says.
    const onThreads = /"thread":\d+.*"msg":"transmission"/.test(s.stderr());
    expect(onThreads).toBe(name.includes('worker threads'));
  });

  it('applies to the file plugin (pread), and the file keeps what was written', async () => {
    const file = dir.join('disk.img');
    writeFileSync(file, Buffer.alloc(1 << 20));
    const s = await serve([`--filter=${UPPER}`, 'file', `file=${file}`]);
    expect((await nbdshOk(READBACK, s.uri)).trim()).toBe('HELLO, FILTERS');
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(file).subarray(8192, 8206).toString()).toBe('hello, filters');
  });

  it('stacks with a built-in filter by name, outermost first', async () => {
    const s = await serve([`--filter=${UPPER}`, '--filter=nozero', 'memory', '1M']);
    const out = await nbdshOk(`${READBACK}print(h.can_zero())\n`, s.uri);
    expect(out.trim().split('\n')).toEqual(['HELLO, FILTERS', 'False']);
  });
});
