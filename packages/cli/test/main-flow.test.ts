// main() in-process with a stand-in engine: endpoints, URIs, pidfile, --run, cleanup.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, type Io } from '../src/index.ts';
import { fakeEngine } from './fake-engine.ts';
import { FIXTURE } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'nbdts-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io(): Io & { out: string; err: string } {
  const x = {
    out: '',
    err: '',
    stdout(t: string) {
      x.out += t;
    },
    stderr(t: string) {
      x.err += t;
    },
  };
  return x;
}

describe('main() serving flow', () => {
  it('--run gets $uri, $nbd, $unixsocket, $exportname on a private socket and exits with its status', async () => {
    const out = join(dir, 'vars');
    const o = io();
    const engine = fakeEngine();
    const code = await main(
      [
        FIXTURE,
        '1M',
        '-e',
        'my disk',
        '-r',
        '--run',
        `test -S "$unixsocket" && printf '%s\\n' "$uri" "$nbd" "$port" "$unixsocket" "$exportname" > ${out}; exit 3`,
      ],
      o,
      engine,
    );
    expect(o.err).toBe('');
    expect(code).toBe(3);
    const [uri, nbd, port, sock, exportname] = readFileSync(out, 'utf8').split('\n');
    expect(sock).toMatch(/nbdts-.*\/socket$/);
    expect(uri).toBe(`nbd+unix:///my%20disk?socket=${sock}`);
    expect(nbd).toBe(uri);
    expect(port).toBe('');
    expect(exportname).toBe('my disk');
    expect(existsSync(sock!)).toBe(false);
    expect(existsSync(dirname(sock!))).toBe(false);
    expect(o.out).toBe(''); // --run without --print-uri prints nothing on stdout
    expect(engine.created[0]!.readonly).toBe(true);
    expect(engine.shutdowns).toBe(1);
  });

  it('-p 0 listens on TCP and reports the chosen port', async () => {
    const out = join(dir, 'tcp');
    const o = io();
    const code = await main(
      ['-p', '0', '-i', '127.0.0.1', '--print-uri', FIXTURE, '1M', '--run', `printf '%s\\n' "$uri" "$port" > ${out}`],
      o,
      fakeEngine(),
    );
    expect(code).toBe(0);
    const [uri, port] = readFileSync(out, 'utf8').split('\n');
    expect(Number(port)).toBeGreaterThan(0);
    expect(uri).toBe(`nbd://127.0.0.1:${port}`);
    expect(o.out).toBe(`${uri}\n`);
  });

  it('writes the pidfile before the command runs and removes its -U socket at exit', async () => {
    const sock = join(dir, 'sock');
    const pidfile = join(dir, 'pid');
    const out = join(dir, 'pid-seen');
    const code = await main(
      ['-U', sock, '-P', pidfile, FIXTURE, '1M', '--run', `cat ${pidfile} > ${out}; test -S ${sock}`],
      io(),
      fakeEngine(),
    );
    expect(code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(`${process.pid}\n`);
    expect(existsSync(sock)).toBe(false);
  });

  it('reports a socket it cannot create as one line', async () => {
    const o = io();
    const code = await main(['-U', '/nonexistent-dir/sock', FIXTURE, '1M'], o, fakeEngine());
    expect(code).toBe(1);
    expect(o.err).toBe(
      'nbdts: cannot listen on Unix socket /nonexistent-dir/sock: directory /nonexistent-dir does not exist\n',
    );
  });

  it('hands the filters to the engine after their configComplete and getReady, and unloads them', async () => {
    const engine = fakeEngine();
    const filter = new URL('./fixtures/filter.ts', import.meta.url).pathname;
    const { seen } = await import('./fixtures/filter.ts');
    const before = { ...seen, config: [...seen.config] };
    const code = await main([`--filter=${filter}`, FIXTURE, '1M', 'delay-ms=3', '--run', 'true'], io(), engine);
    expect(code).toBe(0);
    expect(engine.filtered).toEqual([['passthrough']]);
    expect(seen.config.slice(before.config.length)).toEqual([{ delayMs: 3 }]);
    expect(seen.ready).toBe(before.ready + 1);
    expect(seen.unloaded).toBe(before.unloaded + 1);
  });
});
