/** Serving connections on worker threads (threads.ts), with real clients. */
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Plugin } from '@nbdts/plugin-api';
import { Cmd } from '@nbdts/protocol';
import { RawClient } from '@nbdts/testkit';
import { start, nbdsh, type Running } from './helpers.ts';
import plugin, { CRASH, sharedState } from './fixtures/threaded-plugin.ts';

const loader = new URL('./fixtures/threaded-loader.ts', import.meta.url).href;

/** A configured plugin and the server options that serve it on `count` threads. */
async function threaded(count: number, extra: { failAttach?: boolean } = {}) {
  await plugin.getReady!({ size: 16 * 1024 * 1024 }, { readonly: false });
  const data = { ...sharedState(), ...extra };
  return { plugin: plugin as Plugin<unknown, unknown>, threads: { count, loader, data } };
}

/** A logger whose JSON lines a test can read. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return {
    logger: pino({ level: 'debug' }, stream),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Wait up to 5 s for `cond`: a worker reports a closed connection a moment after the client sees it. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
}

let s: Running | undefined;
afterEach(async () => {
  await s?.stop();
  s = undefined;
});

/** Python: connect a second handle h2 asking for descriptions on both (set before h connects). */
const TWO = (uri: string) => `
h2 = nbd.NBD()
h2.set_full_info(True)
h2.connect_uri(${JSON.stringify(uri)})
`;

describe('worker threads', () => {
  it('serves concurrent connections on different threads that see the same data', async () => {
    const { plugin: p, threads } = await threaded(2);
    s = await start(p, { threads });
    const r = await nbdsh(
      s.uri,
      `
` +
        TWO(s.uri) +
        `
h3 = nbd.NBD()
h3.set_full_info(True)
h3.connect_uri(${JSON.stringify(s.uri)})
print(h2.get_export_description(), h3.get_export_description())
h2.pwrite(b"written on one thread" * 1000, 4096)
assert h3.pread(21000, 4096) == b"written on one thread" * 1000
print("ok")
`,
    );
    expect(r.stderr).toBe('');
    const [d1, d2] = r.stdout
      .trim()
      .split('\n')[0]!
      .split(/(?<=\d) /);
    expect(d1).toMatch(/^thread [1-9]\d*$/); // not the main thread (0)
    expect(d2).toMatch(/^thread [1-9]\d*$/);
    expect(d1).not.toBe(d2);
    expect(r.stdout).toContain('ok');
    // And the main thread's copy of the plugin sees the same bytes.
    expect(Buffer.from(sharedState().data, 4096, 21).toString()).toBe('written on one thread');
    await until(() => s!.server.connectionCount === 0);
    expect(s.server.connectionCount).toBe(0);
  });

  it('counts connections on workers, and shuts down gracefully with a flush there', async () => {
    const { plugin: p, threads } = await threaded(2);
    const counters = new Int32Array(sharedState().counters);
    s = await start(p, { threads });
    const closed: number[] = [];
    s.server.onConnectionClosed(() => closed.push(s!.server.connectionCount));
    // A client that writes and then waits: the server's shutdown must flush for it.
    const client = nbdsh(
      s.uri,
      `
h.pwrite(b"x" * 4096, 0)
import time
for i in range(300):
    time.sleep(0.05)
    try:
        h.pread(1, 0)
    except nbd.Error:
        break
`,
    );
    // Counted from the hand-off on; the write (seen in the shared memory) means the export is open.
    const data = Buffer.from(sharedState().data); // fresh zeros: getReady made it for this test
    await until(() => data[0] === 0x78);
    expect(data[0]).toBe(0x78);
    expect(s.server.connectionCount).toBe(1);
    const before = Atomics.load(counters, 0);
    await s.server.shutdown();
    expect(Atomics.load(counters, 0)).toBe(before + 1);
    expect(closed).toEqual([0]);
    await client;
  }, 20_000);

  it('falls back to the main thread, with a warning, when a worker cannot attach', async () => {
    const { plugin: p, threads } = await threaded(2, { failAttach: true });
    const { logger, records } = capture();
    s = await start(p, { threads, logger });
    const r = await nbdsh(s.uri, TWO(s.uri) + 'print(h2.get_export_description())');
    expect(r.stdout.trim()).toBe('thread 0');
    expect(records().some((l) => l.level === 40 && String(l.msg).includes('attach refused on purpose'))).toBe(true);
  });

  it('survives a worker thread dying: its connection ends, new ones are served', async () => {
    const { plugin: p, threads } = await threaded(1);
    const { logger, records } = capture();
    s = await start(p, { threads, logger });
    const closed: string[] = [];
    s.server.onConnectionClosed(() => closed.push('closed'));
    const r = await nbdsh(
      s.uri,
      `
try:
    h.pwrite(${JSON.stringify(CRASH.toString())}.encode(), 0)
    print("written")
except nbd.Error as e:
    print("failed")
`,
    );
    expect(r.stdout.trim()).toBe('failed');
    // The client may see the socket close before the main thread hears the worker exit.
    await until(() => closed.length > 0);
    expect(closed).toEqual(['closed']);
    expect(records().some((l) => l.level === 50 && String(l.msg).includes('worker thread ended unexpectedly'))).toBe(
      true,
    );
    // The only worker is gone: the main thread serves the next client.
    const again = await nbdsh(s.uri, TWO(s.uri) + 'print(h2.get_export_description())');
    expect(again.stdout.trim()).toBe('thread 0');
  });

  it("relays workers' log lines through the main logger, marked with the thread", async () => {
    const { plugin: p, threads } = await threaded(1);
    const { logger, records } = capture();
    s = await start(p, { threads, logger });
    await nbdsh(s.uri, 'h.pread(512, 0)');
    const conn = records().find((l) => l.msg === 'connection' && l.thread === 0);
    expect(conn).toMatchObject({ conn: 1, peer: 'unix' });
  });

  it('survives pipelined requests followed by an abrupt close on worker threads, 20 times', async () => {
    const { plugin: p, threads } = await threaded(2);
    s = await start(p, { threads });
    for (let round = 0; round < 20; round++) {
      const { c } = await RawClient.open(s.path, { structured: round % 2 === 0 });
      for (let i = 0; i < 300; i++) {
        if (i % 3 === 0)
          c.request(
            { type: Cmd.WRITE, cookie: BigInt(i), offset: (i * 4096) % (8 << 20), length: 4096 },
            Buffer.alloc(4096, i),
          );
        else c.request({ type: Cmd.READ, cookie: BigInt(i), offset: (i * 65536) % (8 << 20), length: 65536 });
      }
      c.write(Buffer.alloc(10, 0x25)); // half a header at the end
      c.destroy();
    }
    await until(() => s!.server.connectionCount === 0);
    expect(s.server.connectionCount).toBe(0);
    // Both threads still serve.
    const r = await nbdsh(
      s.uri,
      TWO(s.uri) +
        `
h3 = nbd.NBD()
h3.set_full_info(True)
h3.connect_uri(${JSON.stringify(s.uri)})
print(h2.get_export_description() != h3.get_export_description(), len(h3.pread(4096, 4096)))
`,
    );
    expect(r.stdout.trim()).toBe('True 4096');
  });
});
