import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Secret } from '@nbdts/plugin-api';
import { ensureSwift, type SwiftEnv } from '@nbdts/testkit';
import { SwiftConnection, SwiftContainerStore, V1Auth } from '../src/client/index.ts';

export { ensureSwift, type SwiftEnv };

/** A container name no other test (or earlier run) uses. */
export function uniqueName(tag: string): string {
  return `nbdts-${tag}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function v1Connection(env: SwiftEnv, user = env.user, key = env.key): SwiftConnection {
  return new SwiftConnection(new V1Auth(env.authUrl, user, new Secret(key)), { timeoutMs: 15_000 });
}

/** Delete every object and then the container (test clean-up). */
export async function removeContainer(store: SwiftContainerStore): Promise<void> {
  const keys: string[] = [];
  try {
    for await (const o of store.list('')) keys.push(o.key);
  } catch {
    return;
  }
  for (let i = 0; i < keys.length; i += 16) await Promise.all(keys.slice(i, i + 16).map((k) => store.delete(k)));
  await store.conn.deleteContainer(store.container);
}

/** A throw-away local HTTP server on an ephemeral port. */
export async function localServer(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString('utf8');
    });
    req.on('end', () => handler(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
