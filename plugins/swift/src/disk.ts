import { ConfigError } from '@nbdts/plugin-api';
import { DEFAULT_CONNECTIONS, StoreError } from '@nbdts/objstore';
import { SwiftConnection, SwiftContainerStore, createAuthenticator, type AuthOptions } from './client/index.ts';

/**
 * A connection + container store for one container, with a user-facing error when the options do not add up.
 * `requestsInFlight`: the most requests the caller runs at once; there are at least that many sockets, so none waits for one.
 */
export function containerStore(
  container: string,
  auth: AuthOptions,
  options: { listLimit?: number; requestsInFlight?: number } = {},
): SwiftContainerStore {
  let authenticator;
  try {
    authenticator = createAuthenticator(auth);
  } catch (err) {
    throw new ConfigError(`swift: ${container}: ${(err as Error).message}`);
  }
  const connections = Math.max(DEFAULT_CONNECTIONS, options.requestsInFlight ?? 0);
  return new SwiftContainerStore(
    new SwiftConnection(authenticator, { timeoutMs: auth.timeoutMs, connections }),
    container,
    { listLimit: options.listLimit },
  );
}

/** Turn a store failure at start-up into one line that says what to do. */
export function startupError(container: string, err: unknown): Error {
  if (err instanceof ConfigError) return err;
  if (err instanceof StoreError) {
    const hint = {
      auth: 'check the credentials (username, password, project) and that the user may use this container',
      transient:
        'is Swift running and reachable at that URL? (a busy Swift was given 10 s; a refused connection was not retried)',
      'missing-container': 'create it with size= or nbdts-swift setup',
      precondition: '',
      fatal: '',
    }[err.kind];
    return new ConfigError(`swift: ${container}: ${err.message}${hint ? `; ${hint}` : ''}`, { cause: err });
  }
  return err as Error;
}
