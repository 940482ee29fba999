import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HttpTransport, StoreError } from '../src/index.ts';

type Route = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A local HTTP server whose behaviour each test sets; counts the TCP connections it accepted. */
let server: Server;
let base: string;
let route: Route;
let connections = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => route(req, res, Buffer.concat(parts)));
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

let transport: HttpTransport;
afterEach(async () => {
  await transport?.close();
});

/** Which GET client the tests of a describe block use: plain-get.ts, or undici for every request. */
let plainGets = true;

function fresh(opts?: ConstructorParameters<typeof HttpTransport>[0]): HttpTransport {
  transport = new HttpTransport({ plainGets, ...opts });
  connections = 0;
  return transport;
}

/** A raw TCP server for answers node:http will not send (wrong lengths, resets). */
async function rawServer(
  onData: (socket: Socket, request: string) => void,
): Promise<{ url: string; connections(): number; close(): Promise<void> }> {
  const open = new Set<Socket>();
  let accepted = 0;
  const srv = createNetServer((socket) => {
    accepted++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    let seen = '';
    socket.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes('\r\n\r\n')) {
        const request = seen;
        seen = '';
        onData(socket, request);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    connections: () => accepted,
    close: () => {
      for (const s of open) s.destroy();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the request to fail');
}

describe.each([
  ['GETs on plain-get.ts', true],
  ['every request on undici', false],
])('HttpTransport, %s', (_name, plain) => {
  beforeAll(() => {
    plainGets = plain;
  });
  it('returns bodies of every size intact, with and without Content-Length', async () => {
    const t = fresh();
    for (const size of [0, 1, 8191, 65_537, 4 * 1024 * 1024 + 3]) {
      const data = randomBytes(size);
      for (const chunked of [false, true]) {
        route = (_req, res) => {
          if (!chunked) res.setHeader('Content-Length', size);
          // Several writes, so the body arrives in pieces.
          const third = Math.ceil(size / 3);
          res.write(data.subarray(0, third));
          res.write(data.subarray(third, 2 * third));
          res.end(data.subarray(2 * third));
        };
        const res = await t.request({ method: 'GET', url: `${base}/obj`, what: `GET ${size}` });
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(size);
        expect(res.body.equals(data)).toBe(true);
        expect(res.headers['transfer-encoding']).toBe(chunked ? 'chunked' : undefined);
      }
    }
  });

  it('sends request bodies (Buffer and string), the method, path, query and headers', async () => {
    const t = fresh();
    let seen: { method?: string; url?: string; body?: Buffer; headers?: IncomingMessage['headers'] } = {};
    route = (req, res, body) => {
      seen = { method: req.method, url: req.url, body, headers: req.headers };
      res.statusCode = 201;
      res.end();
    };
    const data = randomBytes(1024 * 1024);
    const res = await t.request({
      method: 'PUT',
      url: `${base}/c/a%20b?x=1&y=2`,
      body: data,
      headers: { ETag: 'abc' },
      what: 'PUT',
    });
    expect(res.status).toBe(201);
    expect(seen.method).toBe('PUT');
    expect(seen.url).toBe('/c/a%20b?x=1&y=2');
    expect(seen.body!.equals(data)).toBe(true);
    expect(seen.headers!['content-length']).toBe(String(data.length));
    expect(seen.headers!.etag).toBe('abc');
    // fetch would add these; a lean client must not ask for compressed answers it would have to inflate.
    expect(seen.headers!['accept-encoding']).toBeUndefined();

    await t.request({ method: 'POST', url: `${base}/s`, body: '{"é":1}', what: 'POST' });
    expect(seen.body!.toString('utf8')).toBe('{"é":1}');
    expect(seen.headers!['content-length']).toBe(String(Buffer.byteLength('{"é":1}')));
  });

  it('lower-cases header names, joins repeated headers, and has no prototype keys', async () => {
    const t = fresh();
    route = (_req, res) => {
      res.setHeader('X-Object-Meta-Mixed-Case', 'Value Kept');
      res.setHeader('X-Rep', ['a', 'b']);
      res.end('x');
    };
    const res = await t.request({ method: 'GET', url: base, what: 'GET' });
    expect(res.headers['x-object-meta-mixed-case']).toBe('Value Kept');
    expect(res.headers['X-Object-Meta-Mixed-Case']).toBeUndefined();
    expect(res.headers['x-rep']).toBe('a, b');
    expect(res.headers.constructor).toBeUndefined();
    expect(res.headers.toString).toBeUndefined();
  });

  it('HEAD has no body even with a Content-Length; 204 neither, and leaves the socket reusable', async () => {
    // Raw answers: node:http closes the connection after a HEAD that announces a length.
    const raw = await rawServer((socket, request) => {
      if (request.startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 12345\r\nETag: "abc"\r\n\r\n');
      else socket.write('HTTP/1.1 204 No Content\r\n\r\n');
    });
    try {
      const t = fresh();
      const head = await t.request({ method: 'HEAD', url: `${raw.url}/o`, what: 'HEAD', timeoutMs: 2_000 });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe('12345');
      expect(head.headers.etag).toBe('"abc"');
      expect(head.body.length).toBe(0);
      const none = await t.request({ method: 'DELETE', url: `${raw.url}/o`, what: 'DELETE', timeoutMs: 2_000 });
      expect(none.status).toBe(204);
      expect(none.body.length).toBe(0);
      for (let i = 0; i < 10; i++)
        await t.request({ method: 'DELETE', url: `${raw.url}/o`, what: 'x', timeoutMs: 2_000 });
      // undici closes the socket after a HEAD (against servers that send a body anyway); the 204s
      // reuse theirs. (With undici's Agent, every request after that HEAD got a new connection.) It waits one event-loop turn before reusing a socket, so back-to-back
      // requests may alternate between two.
      expect(raw.connections()).toBeLessThanOrEqual(3);
    } finally {
      await raw.close();
    }
  });

  it('returns error statuses and redirects as they are, and reuses the socket after them', async () => {
    const t = fresh();
    let n = 0;
    route = (_req, res) => {
      n++;
      if (n % 3 === 0) {
        res.writeHead(302, { Location: `${base}/elsewhere` });
        res.end('moved');
      } else if (n % 3 === 1) {
        res.writeHead(404, { 'Content-Type': 'text/html' });
        res.end('<h1>Not Found</h1>'.repeat(1000));
      } else {
        res.writeHead(503);
        res.end('busy');
      }
    };
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++)
      statuses.push((await t.request({ method: 'GET', url: `${base}/x`, what: 'GET' })).status);
    expect(statuses).toEqual([404, 503, 302, 404, 503, 302, 404, 503, 302, 404, 503, 302]);
    expect(n).toBe(12); // no redirect was followed
    // undici waits one event-loop turn before reusing a socket, so back-to-back requests may alternate
    // between two; one per request would mean bodies left unread.
    expect(connections).toBeLessThanOrEqual(2);
  });

  it('runs requests in parallel on at most `connections` sockets per origin, reusing them', async () => {
    const t = fresh({ connections: 3 });
    let inFlight = 0;
    let peak = 0;
    route = (_req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('ok');
      }, 20);
    };
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => t.request({ method: 'GET', url: `${base}/${i}`, what: 'GET' })),
      );
    }
    expect(peak).toBe(3);
    expect(connections).toBe(3);
  });

  it('a body shorter than its Content-Length is a transient error', async () => {
    const raw = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n' + 'x'.repeat(50));
      setTimeout(() => socket.end(), 20);
    });
    try {
      const err = await failure(fresh().request({ method: 'GET', url: `${raw.url}/o`, what: 'GET o in c1' }));
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('transient');
      expect((err as StoreError).message).toMatch(/^GET o in c1: /);
    } finally {
      await raw.close();
    }
  });

  it('never returns more than Content-Length bytes, and a server that sent extra does not poison the next request', async () => {
    const raw = await rawServer((socket, request) => {
      if (request.startsWith('GET /long'))
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n' + '0123456789EXTRA-GARBAGE');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    try {
      const t = fresh();
      const res = await t.request({ method: 'GET', url: `${raw.url}/long`, what: 'GET long' });
      expect(res.body.toString()).toBe('0123456789');
      const next = await t.request({ method: 'GET', url: `${raw.url}/next`, what: 'GET next' });
      expect(next.body.toString()).toBe('ok');
    } finally {
      await raw.close();
    }
  });

  it('a server that resets the connection gives a transient error naming the request', async () => {
    let mode: 'before' | 'mid-body' = 'before';
    const raw = await rawServer((socket) => {
      if (mode === 'mid-body') socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + 'y'.repeat(100));
      setTimeout(() => socket.resetAndDestroy(), 10);
    });
    try {
      const t = fresh();
      for (const m of ['before', 'mid-body'] as const) {
        mode = m;
        const err = await failure(t.request({ method: 'GET', url: `${raw.url}/o`, what: 'GET o' }));
        expect(err).toBeInstanceOf(StoreError);
        expect((err as StoreError).kind).toBe('transient');
        expect((err as StoreError).message).toMatch(/^GET o: .*(ECONNRESET|other side closed|socket)/i);
      }
    } finally {
      await raw.close();
    }
  });

  it('a refused connection is transient and says ECONNREFUSED', async () => {
    const raw = await rawServer(() => {});
    const url = raw.url;
    await raw.close();
    const err = await failure(fresh().request({ method: 'GET', url: `${url}/o`, what: 'GET o' }));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).kind).toBe('transient');
    expect((err as StoreError).message).toMatch(/^GET o: .*ECONNREFUSED/);
  });

  it('times out the whole exchange: no answer, and a body that stalls', async () => {
    const raw = await rawServer((socket, request) => {
      if (request.startsWith('GET /stall'))
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + 'z'.repeat(10));
      // /silent: say nothing at all
    });
    try {
      const t = fresh();
      for (const path of ['/silent', '/stall']) {
        const t0 = Date.now();
        const err = await failure(
          t.request({ method: 'GET', url: `${raw.url}${path}`, what: `GET ${path}`, timeoutMs: 200 }),
        );
        expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
        expect(Date.now() - t0).toBeLessThan(5_000);
        expect(err).toBeInstanceOf(StoreError);
        expect((err as StoreError).kind).toBe('transient');
        expect((err as StoreError).message).toBe(`GET ${path}: no answer within 0.2 s`);
      }
    } finally {
      await raw.close();
    }
  });

  it("the caller's abort rejects with the signal's reason, not a transient StoreError, and frees the socket", async () => {
    let answer = false;
    route = (_req, res) => {
      if (answer) res.end('late');
      // otherwise never answer
    };
    const t = fresh({ connections: 1 });
    const reason = new Error('caller gave up');
    const ac = new AbortController();
    const p = t.request({ method: 'GET', url: `${base}/hang`, signal: ac.signal, what: 'GET hang' });
    setTimeout(() => ac.abort(reason), 50);
    expect(await failure(p)).toBe(reason);

    // Already aborted: rejected without sending anything.
    const before = connections;
    const done = new AbortController();
    done.abort(reason);
    expect(await failure(t.request({ method: 'GET', url: `${base}/x`, signal: done.signal, what: 'GET x' }))).toBe(
      reason,
    );
    expect(connections).toBe(before);

    // The one socket the transport may use was given up, so the next request gets through.
    answer = true;
    const res = await t.request({ method: 'GET', url: `${base}/next`, what: 'GET next', timeoutMs: 5_000 });
    expect(res.body.toString()).toBe('late');
  });

  it('a request queued behind a busy socket can time out and be aborted before it is sent', async () => {
    const served: string[] = [];
    route = (req, res) => {
      served.push(req.url!);
      setTimeout(() => res.end('slow'), 300);
    };
    const t = fresh({ connections: 1 });
    const first = t.request({ method: 'GET', url: `${base}/first`, what: 'GET first' });
    const queued = t.request({ method: 'GET', url: `${base}/queued`, what: 'GET queued', timeoutMs: 50 });
    const err = await failure(queued);
    expect((err as StoreError).message).toBe('GET queued: no answer within 0.05 s');
    expect((await first).body.toString()).toBe('slow');
    await new Promise((r) => setTimeout(r, 50));
    expect(served).toEqual(['/first']); // the timed-out request was never sent
  });

  it('rejects bad URLs and header values as fatal, and requests after close()', async () => {
    const t = fresh();
    const bad = await failure(t.request({ method: 'GET', url: 'not a url', what: 'GET x' }));
    expect((bad as StoreError).kind).toBe('fatal');
    const header = await failure(
      t.request({ method: 'GET', url: base, headers: { 'X-A': 'a\r\nX-Injected: 1' }, what: 'GET x' }),
    );
    expect(header).toBeInstanceOf(StoreError);
    expect((header as StoreError).kind).toBe('fatal');
    await t.close();
    const closed = await failure(t.request({ method: 'GET', url: base, what: 'GET x' }));
    expect((closed as StoreError).message).toMatch(/closed/);
  });
});

describe('HttpTransport GETs on plain-get.ts (bodies read in place)', () => {
  beforeAll(() => {
    plainGets = true;
  });

  /** Write `parts` one at a time, a few ms apart, so each arrives in its own read. */
  async function trickle(socket: Socket, parts: (string | Buffer)[]): Promise<void> {
    for (const p of parts) {
      socket.write(p);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  it('reads heads and bodies that arrive a few bytes at a time, on one reused socket, into buffers of their own', async () => {
    const data = randomBytes(300_000);
    const head = `HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\nX-Long: ${'v'.repeat(20_000)}\r\n\r\n`;
    const raw = await rawServer((socket) => {
      // The head split mid-line and mid-CRLF, then the body in uneven pieces.
      void trickle(socket, [
        head.slice(0, 7),
        head.slice(7, 30),
        head.slice(30, -3),
        head.slice(-3, -1),
        Buffer.concat([Buffer.from(head.slice(-1)), data.subarray(0, 5)]),
        data.subarray(5, 70_001),
        data.subarray(70_001),
      ]);
    });
    try {
      const t = fresh();
      const first = await t.request({ method: 'GET', url: `${raw.url}/a`, what: 'GET a' });
      const second = await t.request({ method: 'GET', url: `${raw.url}/b`, what: 'GET b' });
      expect(first.body.equals(data)).toBe(true);
      expect(second.body.equals(data)).toBe(true);
      expect(first.body.buffer).not.toBe(second.body.buffer);
      expect(first.headers['x-long']).toBe('v'.repeat(20_000));
      expect(raw.connections()).toBe(1);
    } finally {
      await raw.close();
    }
  });

  it('decodes chunked bodies (extensions, trailers, sizes split across reads) and reuses the socket', async () => {
    const raw = await rawServer((socket) => {
      void trickle(socket, [
        'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel',
        'lo\r',
        '\n1',
        '0\r\n',
        '0123456789abcdef\r\n0\r\nX-Trailer: t\r\n',
        '\r\n',
      ]);
    });
    try {
      const t = fresh();
      for (let i = 0; i < 2; i++) {
        const res = await t.request({ method: 'GET', url: `${raw.url}/missing`, what: 'GET missing' });
        expect(res.status).toBe(404);
        expect(res.body.toString()).toBe('hello0123456789abcdef');
      }
      expect(raw.connections()).toBe(1);
    } finally {
      await raw.close();
    }
  });

  it('reads a close-delimited body to the end, skips 100 Continue, and opens a new socket after Connection: close', async () => {
    const raw = await rawServer((socket, request) => {
      if (request.startsWith('GET /old')) {
        socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
      } else {
        socket.write(
          'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
        );
      }
    });
    try {
      const t = fresh();
      expect((await t.request({ method: 'GET', url: `${raw.url}/old`, what: 'GET old' })).body.toString()).toBe(
        'until the end',
      );
      const res = await t.request({ method: 'GET', url: `${raw.url}/new`, what: 'GET new' });
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('ok');
      expect((await t.request({ method: 'GET', url: `${raw.url}/new`, what: 'GET new' })).body.toString()).toBe('ok');
      expect(raw.connections()).toBe(3);
    } finally {
      await raw.close();
    }
  });

  it('sends a GET again on a new socket once when the server drops a reused one at the request', async () => {
    let served = 0;
    const raw = await rawServer((socket) => {
      const mine = socket as Socket & { served?: number };
      mine.served = (mine.served ?? 0) + 1;
      // Every socket's second request is dropped unanswered, as by a server whose idle timeout just passed.
      if (mine.served === 2) {
        socket.destroy();
        return;
      }
      served++;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes');
    });
    try {
      const t = fresh();
      for (let i = 0; i < 3; i++)
        expect((await t.request({ method: 'GET', url: `${raw.url}/o`, what: 'GET o' })).body.toString()).toBe('yes');
      expect(served).toBe(3);
      // The second and third requests each met a dropped socket and went out again on a new one.
      expect(raw.connections()).toBe(3);
    } finally {
      await raw.close();
    }
  });

  it("closes an idle socket before the server's Keep-Alive timeout", async () => {
    const raw = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nKeep-Alive: timeout=1\r\n\r\nk');
    });
    try {
      const t = fresh();
      await t.request({ method: 'GET', url: `${raw.url}/o`, what: 'GET o' });
      await t.request({ method: 'GET', url: `${raw.url}/o`, what: 'GET o' });
      expect(raw.connections()).toBe(2); // timeout=1 leaves no safe idle time
    } finally {
      await raw.close();
    }
  });

  it('garbled answers are transient errors naming the request, and the socket is not reused', async () => {
    const answers: Record<string, string> = {
      '/nothttp': 'SSH-2.0-OpenSSH_9.2\r\n\r\n',
      '/badlength': 'HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n',
      '/badchunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      '/folded': 'HTTP/1.1 200 OK\r\nX-A: 1\r\n continued\r\nContent-Length: 0\r\n\r\n',
      '/huge': `HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(70_000)}\r\n\r\n`,
      '/gzip': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
    };
    const raw = await rawServer((socket, request) => {
      socket.write(answers[request.split(' ')[1]!] ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    try {
      const t = fresh();
      for (const path of Object.keys(answers)) {
        const err = await failure(
          t.request({ method: 'GET', url: `${raw.url}${path}`, what: `GET ${path}`, timeoutMs: 2_000 }),
        );
        expect(err).toBeInstanceOf(StoreError);
        expect((err as StoreError).kind).toBe('transient');
        expect((err as StoreError).message).toMatch(new RegExp(`^GET ${path}: (?!no answer)`));
      }
      expect(raw.connections()).toBe(Object.keys(answers).length);
      expect((await t.request({ method: 'GET', url: `${raw.url}/ok`, what: 'GET ok' })).body.toString()).toBe('ok');
    } finally {
      await raw.close();
    }
  });
});

describe.each([
  ['GETs on plain-get.ts', true],
  ['every request on undici', false],
])('HttpTransport over https, %s', (_name, plain) => {
  // A self-signed certificate for localhost and 127.0.0.1, made for these tests only.
  const fixture = (f: string) => readFileSync(new URL(`./fixtures/${f}`, import.meta.url));
  const cert = fixture('tls-cert.pem');
  let https: ReturnType<typeof createHttpsServer>;
  let port = 0;
  let accepted = 0;
  let data: Buffer;

  beforeAll(async () => {
    plainGets = plain;
    https = createHttpsServer({ key: fixture('tls-key.pem'), cert }, (req, res) => {
      const size = Number(req.url!.slice(1).split('?')[0]);
      if (!req.url!.includes('chunked')) res.setHeader('Content-Length', size);
      res.write(data.subarray(0, Math.floor(size / 2)));
      res.end(data.subarray(Math.floor(size / 2), size));
    });
    https.keepAliveTimeout = 30_000;
    https.on('secureConnection', () => {
      accepted++;
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    port = (https.address() as AddressInfo).port;
    data = randomBytes(4 * 1024 * 1024 + 3);
  });

  afterAll(async () => {
    https.closeAllConnections();
    await new Promise<void>((resolve) => https.close(() => resolve()));
  });

  it('reads bodies intact over TLS, by IP and by name (SNI), reusing the socket', async () => {
    const t = fresh({ ca: cert });
    accepted = 0;
    for (const host of ['127.0.0.1', 'localhost']) {
      for (const size of [0, 1, 70_000, data.length]) {
        const res = await t.request({ method: 'GET', url: `https://${host}:${port}/${size}`, what: `GET ${size}` });
        expect(res.status).toBe(200);
        expect(res.body.equals(data.subarray(0, size))).toBe(true);
      }
    }
    const res = await t.request({ method: 'GET', url: `https://127.0.0.1:${port}/5000?chunked`, what: 'GET chunked' });
    expect(res.body.equals(data.subarray(0, 5000))).toBe(true);
    // One socket per host name (undici may use a second while the first goes back to its pool).
    expect(accepted).toBeLessThanOrEqual(4);
  });

  it('a certificate nobody vouches for is a fatal error naming the request', async () => {
    const err = await failure(fresh().request({ method: 'GET', url: `https://127.0.0.1:${port}/10`, what: 'GET tls' }));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).kind).toBe('fatal');
    expect((err as StoreError).message).toMatch(/^GET tls: .*(self[- ]signed|certificate)/i);
  });
});
