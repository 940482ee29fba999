import { classifyFetchError } from './errors.ts';

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Whole request including reading the body; default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** For error messages: "GET disk.part/00000001". Never include secrets. */
  what: string;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * One HTTP exchange with fetch (undici: keep-alive by default), body read in
 * full under the same deadline, network failures turned into StoreErrors.
 * Reading the body always (even of errors) lets the connection be reused.
 */
export async function send(req: HttpRequest): Promise<HttpResponse> {
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal,
      redirect: 'manual',
    });
    const body = req.method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, body };
  } catch (err) {
    throw classifyFetchError(err, req.what, timeoutMs, req.signal);
  }
}
