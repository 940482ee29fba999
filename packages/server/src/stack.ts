/**
 * A plugin and its filters opened in-process, without a socket: for filter
 * and plugin tests, and for tools that want a stack's data directly. The
 * result behaves as `next` does for a filter on top of the stack, with the
 * capabilities the engine would advertise.
 */
import type { Client, OwnedNext } from '@nbdts/plugin-api';
import type { Stack } from './api.ts';
import { Backend, type Capabilities } from './backend.ts';

export interface OpenStack extends OwnedNext {
  /** What a client would be told (after the engine's defaults and -r). */
  readonly caps: Capabilities;
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
  return Object.assign(h.asNext(opts.warn), { caps: h.caps });
}
