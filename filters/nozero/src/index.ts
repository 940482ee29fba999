/**
 * nozero: disable or emulate efficient zeroing, as nbdkit's nozero filter,
 * to measure what sparse-aware clients gain and to test their fallbacks.
 *
 *   zeromode=none     (default) WRITE_ZEROES not advertised
 *   zeromode=emulate  advertised, done with writes of zeros through this filter
 *   zeromode=notrim   passed to the layer below without MAY_TRIM
 *   zeromode=plugin   passed through unchanged (to try fastzeromode alone)
 *   fastzeromode=default|none|slow|ignore   see docs/filters/nozero.md
 */
import { ConfigError, Flag, NbdError, defineFilter, moduleSettings, z, type Next } from '@nbdts/plugin-api';

const config = z.object({
  zeromode: z
    .enum(['none', 'emulate', 'notrim', 'plugin'])
    .default('none')
    .describe('none: no WRITE_ZEROES; emulate: with writes; notrim: without MAY_TRIM; plugin: unchanged'),
  fastzeromode: z
    .enum(['default', 'none', 'slow', 'ignore'])
    .default('default')
    .describe('none: no fast zero; slow: fast zeroes fail with ENOTSUP; ignore: treated as plain zeroes (unsafe)'),
});
type Config = z.output<typeof config>;

const settings = moduleSettings<Config>('nozero');

const ZEROS = Buffer.alloc(1 << 20);

/** zeromode=emulate: the range written with zeros (FUA, when asked, on every write). */
async function writeZeros(next: Next, count: number, offset: number, fua: number): Promise<void> {
  while (count > 0) {
    const n = Math.min(count, ZEROS.length);
    await next.pwrite(ZEROS.subarray(0, n), offset, fua);
    count -= n;
    offset += n;
  }
}

/** notrim and plugin forward zero requests, so the layer below must really zero. */
async function requireNativeZero(next: Next, mode: string): Promise<void> {
  if ((await next.canZero()) !== 'native') {
    throw new NbdError('EINVAL', `nozero: zeromode=${mode} needs a plugin that zeroes natively`);
  }
}

export default defineFilter({
  name: 'nozero',
  version: '0.1.0',
  description: 'Disable or emulate write zeroes and fast zero (nbdkit nozero filter)',
  config,
  threads: settings.threads,

  configComplete(c) {
    if (c.zeromode === 'none' && c.fastzeromode !== 'default') {
      throw new ConfigError('fastzeromode has no effect with zeromode=none');
    }
    settings.set(c);
  },

  async canZero(next) {
    const { zeromode } = settings.get();
    if (zeromode === 'none') return 'none';
    // emulate: this filter zeroes with writes itself, so fastzeromode=ignore can reach it.
    if (zeromode === 'emulate') return 'native';
    await requireNativeZero(next, zeromode);
    return next.canZero();
  },

  async canFastZero(next) {
    const { zeromode, fastzeromode } = settings.get();
    if (zeromode === 'none' || fastzeromode === 'none') return false;
    // emulate: advertised, and (unless ignored) every fast zero fails at once.
    if (zeromode === 'emulate' || fastzeromode === 'slow' || fastzeromode === 'ignore') return true;
    return next.canFastZero();
  },

  // Never reached with zeromode=none (not advertised).
  async zero(next, _h, count, offset, flags) {
    const { zeromode, fastzeromode } = settings.get();
    if (flags & Flag.FAST_ZERO) {
      if (fastzeromode === 'slow' || (zeromode === 'emulate' && fastzeromode === 'default')) {
        throw new NbdError('ENOTSUP', `nozero: fast zero refused (zeromode=${zeromode}, fastzeromode=${fastzeromode})`);
      }
      if (fastzeromode === 'ignore') flags &= ~Flag.FAST_ZERO;
    }
    if (zeromode === 'emulate') return writeZeros(next, count, offset, flags & Flag.FUA);
    if (zeromode === 'notrim') flags &= ~Flag.MAY_TRIM;
    return next.zero(count, offset, flags);
  },
});
