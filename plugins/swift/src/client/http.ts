import {
  HttpTransport,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type TransportRequest,
  type TransportResponse,
} from '@nbdts/objstore';

export type HttpRequest = TransportRequest;
export type HttpResponse = TransportResponse;

export const DEFAULT_TIMEOUT_MS = DEFAULT_REQUEST_TIMEOUT_MS;

let shared: HttpTransport | undefined;

/** For requests made outside a SwiftConnection (an authenticator used on its own): idle sockets do not keep the process alive. */
function sharedTransport(): HttpTransport {
  shared ??= new HttpTransport();
  return shared;
}

/**
 * One HTTP exchange, body read in full, network failures as StoreErrors (the
 * caller's abort passes through). Redirects are returned, not followed.
 */
export function send(req: HttpRequest, transport: HttpTransport = sharedTransport()): Promise<HttpResponse> {
  return transport.request(req);
}
