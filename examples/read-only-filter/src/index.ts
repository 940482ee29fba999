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
 * A filter sees the next layer as a Plugin and returns the callbacks it
 * replaces; everything else passes straight through. Its parameters share the
 * command line with the plugin's, hence the ro- prefix.
 */
import { defineFilter, log, nbdError, param, z, type Plugin } from '@nbdts/plugin-api';

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

type AnyPlugin = Plugin<unknown, unknown>;

export default defineFilter({
  name: 'readonly',
  version: '0.1.0',
  description: 'Example: make an export read-only, or fail its writes',
  config,

  wrap(next: AnyPlugin, c: ReadOnlyConfig): Partial<AnyPlugin> {
    let writesLeft = c.roAfter;

    // Count a write; true when this one must be stopped.
    function stop(what: string, offset: number): boolean {
      if (writesLeft > 0) {
        writesLeft--;
        return false;
      }
      log.debug(`readonly: ${what} at ${offset} refused with ${c.roError}`);
      return true;
    }

    const refuse = c.roMode === 'refuse';
    const fail = (what: string, offset: number): never => {
      throw nbdError(refuse ? 'EROFS' : c.roError, `readonly filter: ${what} at offset ${offset} refused`);
    };

    return {
      // In refuse mode the client is told up front (NBD_FLAG_READ_ONLY), once the
      // allowance is used up. canWrite is asked when a client connects.
      canWrite: async (h) => {
        const writable = next.canWrite ? await next.canWrite(h) : next.pwrite !== undefined;
        return writable && (!refuse || writesLeft > 0);
      },

      // Both modes still guard the data callbacks: a connection made while
      // writes were allowed may keep sending them.
      pwrite:
        next.pwrite &&
        (async (h, buf, offset, flags) => {
          if (stop('write', offset)) fail('write', offset);
          return next.pwrite!(h, buf, offset, flags);
        }),
      trim:
        next.trim &&
        (async (h, count, offset, flags) => {
          if (stop('trim', offset)) fail('trim', offset);
          return next.trim!(h, count, offset, flags);
        }),
      zero:
        next.zero &&
        (async (h, count, offset, flags) => {
          if (stop('zero', offset)) fail('zero', offset);
          return next.zero!(h, count, offset, flags);
        }),
    };
  },
});
