/**
 * An example nbdts filter: stop writes to any plugin's export.
 *
 *   ro-mode=refuse  (default) advertise the export as read-only, so clients
 *                   know not to write (like -r, but chosen by the filter)
 *   ro-mode=fail    keep advertising a writable disk but fail every write,
 *                   trim and zero with ro-error: a way to test how clients
 *                   (file systems, VMs, backup tools) cope with write errors
 *   ro-after=N      let the first N writes through, then start refusing/failing
 *                   (counted over all connections; default 0)
 *
 * A filter implements only the callbacks it changes; each gets `next`, the
 * layer below for this connection, with every callback present and the
 * engine's defaults applied. Everything else passes straight through.
 * Parameters share the command line with the plugin's, hence the ro- prefix.
 */
import { defineFilter, log, nbdError, param, z, type Next } from '@nbdts/plugin-api';

const config = z.object({
  roMode: z
    .enum(['refuse', 'fail'])
    .default('refuse')
    .describe('refuse: advertise read-only; fail: accept write requests and fail them'),
  roError: z
    .enum(['EROFS', 'EPERM', 'EIO', 'ENOSPC'])
    .default('EROFS')
    .describe('The error failed writes return (ro-mode=fail)'),
  roAfter: param.int().default(0).describe('Writes allowed before the filter starts refusing (0: none)'),
});
export type ReadOnlyConfig = z.output<typeof config>;

/** The settings, and the writes still allowed, in memory every thread sees (see threads below). */
interface State {
  settings: ReadOnlyConfig;
  /** One Int32: writes left, shared by all connections on all threads. */
  left: SharedArrayBuffer;
}
let state: State | undefined;

function current(): { settings: ReadOnlyConfig; left: Int32Array } {
  if (!state) throw new Error('readonly filter used before configComplete');
  return { settings: state.settings, left: new Int32Array(state.left) };
}

/** Take one write from the allowance; true when this one must be stopped. */
function stop(what: string, offset: number): boolean {
  const { settings, left } = current();
  // Atomically: connections on other threads count against the same allowance.
  for (;;) {
    const n = Atomics.load(left, 0);
    if (n <= 0) break;
    if (Atomics.compareExchange(left, 0, n, n - 1) === n) return false;
  }
  log.debug(`readonly: ${what} at ${offset} refused with ${settings.roError}`);
  return true;
}

function guard(what: string, offset: number): void {
  if (!stop(what, offset)) return;
  const { roMode, roError } = current().settings;
  throw nbdError(roMode === 'refuse' ? 'EROFS' : roError, `readonly filter: ${what} at offset ${offset} refused`);
}

export default defineFilter({
  name: 'readonly',
  version: '0.1.0',
  description: 'Example: make an export read-only, or fail its writes',
  config,

  configComplete(c) {
    const left = new SharedArrayBuffer(4);
    Atomics.store(new Int32Array(left), 0, c.roAfter);
    state = { settings: c, left };
  },

  // Worker threads: every thread's copy of this module uses the same settings and allowance.
  threads: {
    share: () => state,
    attach: (shared) => {
      state = shared as State;
    },
  },

  // In refuse mode the client is told up front (NBD_FLAG_READ_ONLY), once the
  // allowance is used up. canWrite is asked when a client connects.
  async canWrite(next: Next) {
    const { settings, left } = current();
    return (await next.canWrite()) && (settings.roMode !== 'refuse' || Atomics.load(left, 0) > 0);
  },

  // Both modes still guard the data callbacks: a connection made while
  // writes were allowed may keep sending them.
  pwrite(next, _h, buf, offset, flags) {
    guard('write', offset);
    return next.pwrite(buf, offset, flags);
  },
  trim(next, _h, count, offset, flags) {
    guard('trim', offset);
    return next.trim(count, offset, flags);
  },
  zero(next, _h, count, offset, flags) {
    guard('zero', offset);
    return next.zero(count, offset, flags);
  },
});
