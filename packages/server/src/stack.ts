/**
 * A plugin and its filters opened in-process, without a socket: for filter
 * and plugin tests, and for tools that want a stack's data directly. The
 * result behaves as `next` does for a filter on top of the stack, with the
 * capabilities the engine would advertise.
 */
import type { Client, Next } from '@nbdts/plugin-api';
import type { Stack } from './api.ts';
import { Backend, type Capabilities } from './backend.ts';

export interface OpenStack extends Next {
  /** What a client would be told (after the engine's defaults and -r). */
  readonly caps: Capabilities;
  /** Finalize the filters and close every layer. */
  close(): Promise<void>;
}

export interface OpenStackOptions {
  /** As -r. Default false. */
  readonly?: boolean;
  /** The export name a client asked for ('' resolves through defaultExport). Default ''. */
  exportName?: string;
  /** Largest request; the default block size maximum. Default 32 MiB. */
  maxPayload?: number;
  client?: Client;
  warn?: (msg: string) => void;
}

export async function openStack(stack: Stack, opts: OpenStackOptions = {}): Promise<OpenStack> {
  const backend = new Backend(
    stack.plugin,
    stack.filters ?? [],
    opts.readonly ?? false,
    opts.maxPayload ?? 32 * 1024 * 1024,
    opts.warn ?? (() => {}),
    0,
  );
  const requested = opts.exportName ?? '';
  const name = requested === '' ? await backend.defaultExport() : requested;
  const h = await backend.open(name, opts.client);
  const t = h.top;
  // Bound methods: the layer's private state is reached through its own `this`.
  return {
    exportName: t.exportName,
    readonly: t.readonly,
    caps: h.caps,
    close: () => h.close(opts.warn),
    getSize: () => t.getSize(),
    blockSize: () => t.blockSize(),
    exportDescription: () => t.exportDescription(),
    canWrite: () => t.canWrite(),
    canFlush: () => t.canFlush(),
    canTrim: () => t.canTrim(),
    canZero: () => t.canZero(),
    canFastZero: () => t.canFastZero(),
    canFua: () => t.canFua(),
    canExtents: () => t.canExtents(),
    canCache: () => t.canCache(),
    canMultiConn: () => t.canMultiConn(),
    isRotational: () => t.isRotational(),
    pread: (buf, offset, flags) => t.pread(buf, offset, flags),
    read: (count, offset, flags) => t.read(count, offset, flags),
    pwrite: (buf, offset, flags) => t.pwrite(buf, offset, flags),
    flush: (flags) => t.flush(flags),
    trim: (count, offset, flags) => t.trim(count, offset, flags),
    zero: (count, offset, flags) => t.zero(count, offset, flags),
    extents: (count, offset, flags) => t.extents(count, offset, flags),
    cache: (count, offset, flags) => t.cache(count, offset, flags),
  };
}
