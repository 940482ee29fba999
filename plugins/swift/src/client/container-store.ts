import { StoreError, type ObjectInfo, type ObjectStore, type PutOptions } from '@nbdts/objstore';
import type { SwiftConnection } from './connection.ts';
import { statusError } from './errors.ts';
import type { HttpResponse } from './http.ts';

const OBJECT_META = 'x-object-meta-';
const CONTAINER_META = 'x-container-meta-';

export interface ContainerStoreOptions {
  /** Objects per listing page (Swift's maximum and default is 10,000; tests use small pages). */
  listLimit?: number;
}

/** Container-level facts from HEAD: object count, bytes used and X-Container-Meta-* (keys lower-case, no prefix). */
export interface ContainerInfo {
  objectCount: number;
  bytesUsed: number;
  metadata: Record<string, string>;
}

function unquote(etag: string | undefined): string | undefined {
  return etag === undefined ? undefined : etag.replace(/^"|"$/g, '').toLowerCase();
}

function metaFrom(headers: Record<string, string>, prefix: string): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const name in headers) {
    if (name.startsWith(prefix)) meta[name.slice(prefix.length)] = headers[name]!;
  }
  return meta;
}

/** The ObjectStore for one Swift container: one HTTP call per method. */
export class SwiftContainerStore implements ObjectStore {
  readonly description: string;
  readonly #listLimit: number;

  readonly conn: SwiftConnection;
  readonly container: string;

  constructor(conn: SwiftConnection, container: string, options: ContainerStoreOptions = {}) {
    this.conn = conn;
    this.container = container;
    this.description = `swift container ${container} (${conn.description})`;
    this.#listLimit = options.listLimit ?? 10_000;
  }

  #fail(what: string, res: HttpResponse, objectLevel: boolean): StoreError {
    // Swift answers 404 to object PUT/list/POST when the container is gone.
    if (res.status === 404 && !objectLevel) {
      return new StoreError('missing-container', `${what}: container ${this.container} does not exist`, 404);
    }
    return statusError(what, res.status, res.body.toString('utf8'));
  }

  async get(key: string, range?: { offset: number; length: number }, signal?: AbortSignal): Promise<Buffer | null> {
    const what = `GET ${key} in ${this.container}`;
    if (range && range.length === 0) return Buffer.alloc(0);
    const headers: Record<string, string> = {};
    if (range) headers.Range = `bytes=${range.offset}-${range.offset + range.length - 1}`;
    const res = await this.conn.request({
      method: 'GET',
      container: this.container,
      object: key,
      headers,
      signal,
      what,
    });
    if (res.status === 404) return null;
    if (res.status === 416) return Buffer.alloc(0); // range wholly past the end
    if (res.status === 206) return res.body;
    if (res.status === 200) {
      // A store that ignores Range sends it all: cut out what was asked for.
      return range ? res.body.subarray(range.offset, range.offset + range.length) : res.body;
    }
    throw this.#fail(what, res, true);
  }

  async put(key: string, data: Buffer, opts: PutOptions, signal?: AbortSignal): Promise<string> {
    const what = `PUT ${key} in ${this.container}`;
    const headers: Record<string, string> = {
      // Swift computes the MD5 as it stores and answers 422 if it differs: end-to-end integrity for free.
      ETag: opts.md5,
      'Content-Type': opts.contentType ?? 'application/octet-stream',
    };
    if (opts.ifNoneMatch) headers['If-None-Match'] = '*';
    for (const [k, v] of Object.entries(opts.metadata ?? {})) headers[`X-Object-Meta-${k}`] = v;
    const res = await this.conn.request({
      method: 'PUT',
      container: this.container,
      object: key,
      headers,
      body: data,
      signal,
      what,
    });
    if (res.status === 201) return unquote(res.headers['etag']) ?? opts.md5;
    if (res.status === 412) throw new StoreError('precondition', `${what}: the object already exists`, 412);
    if (res.status === 404) throw this.#fail(what, res, false);
    throw this.#fail(what, res, true);
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const what = `DELETE ${key} in ${this.container}`;
    const res = await this.conn.request({ method: 'DELETE', container: this.container, object: key, signal, what });
    if (res.status === 204 || res.status === 200 || res.status === 404) return;
    throw this.#fail(what, res, true);
  }

  async head(key: string, signal?: AbortSignal): Promise<(ObjectInfo & { metadata: Record<string, string> }) | null> {
    const what = `HEAD ${key} in ${this.container}`;
    const res = await this.conn.request({ method: 'HEAD', container: this.container, object: key, signal, what });
    if (res.status === 404) return null;
    if (res.status !== 200) throw this.#fail(what, res, true);
    return {
      key,
      size: Number(res.headers['content-length'] ?? 0),
      etag: unquote(res.headers['etag']),
      metadata: metaFrom(res.headers, OBJECT_META),
    };
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const what = `listing ${this.container}`;
    let marker: string | undefined;
    for (;;) {
      const res = await this.conn.request({
        method: 'GET',
        container: this.container,
        signal,
        what,
        query: { format: 'json', limit: this.#listLimit, prefix: prefix || undefined, marker },
      });
      if (res.status === 204) return;
      if (res.status !== 200) throw this.#fail(what, res, false);
      const page = JSON.parse(res.body.toString('utf8')) as {
        name?: string;
        subdir?: string;
        bytes?: number;
        hash?: string;
      }[];
      for (const o of page) {
        if (o.name !== undefined) yield { key: o.name, size: o.bytes ?? 0, etag: o.hash?.toLowerCase() };
      }
      if (page.length < this.#listLimit) return;
      marker = page[page.length - 1]!.name ?? page[page.length - 1]!.subdir;
    }
  }

  /** HEAD the container: counts and metadata. */
  async info(signal?: AbortSignal): Promise<ContainerInfo> {
    const what = `HEAD container ${this.container}`;
    const res = await this.conn.request({ method: 'HEAD', container: this.container, signal, what });
    if (res.status !== 204 && res.status !== 200) throw this.#fail(what, res, false);
    return {
      objectCount: Number(res.headers['x-container-object-count'] ?? 0),
      bytesUsed: Number(res.headers['x-container-bytes-used'] ?? 0),
      metadata: metaFrom(res.headers, CONTAINER_META),
    };
  }

  async getContainerMeta(signal?: AbortSignal): Promise<Record<string, string>> {
    return (await this.info(signal)).metadata;
  }

  /** POST X-Container-Meta-K (set) / X-Remove-Container-Meta-K (null); other keys are left alone. */
  async setContainerMeta(meta: Record<string, string | null>, signal?: AbortSignal): Promise<void> {
    const what = `updating metadata of container ${this.container}`;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta)) {
      if (v === null) headers[`X-Remove-Container-Meta-${k}`] = 'x';
      else headers[`X-Container-Meta-${k}`] = v;
    }
    const res = await this.conn.request({ method: 'POST', container: this.container, headers, signal, what });
    if (res.status !== 204 && res.status !== 202 && res.status !== 200) throw this.#fail(what, res, false);
  }

  /** Create the container if needed, setting metadata. */
  create(meta: Record<string, string> = {}, signal?: AbortSignal): Promise<void> {
    return this.conn.createContainer(this.container, meta, signal);
  }

  /** Close the connection's sockets (each store made by the plugin has its own connection). */
  close(): Promise<void> {
    return this.conn.close();
  }
}
