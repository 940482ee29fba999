/**
 * Per-request flags passed to plugin callbacks, as a bit mask (no allocation
 * per request). The values match nbdkit's NBDKIT_FLAG_* so ported code reads the same.
 */
export const Flag = {
  /** zero: the plugin may punch a hole instead of writing zeros (client did not send NO_HOLE). */
  MAY_TRIM: 1 << 0,
  /** pwrite/zero/trim: the data must be on stable storage before the callback returns. */
  FUA: 1 << 1,
  /** extents: the client wants only the first extent. */
  REQ_ONE: 1 << 2,
  /** zero: fail fast with ENOTSUP rather than zeroing slowly. */
  FAST_ZERO: 1 << 3,
} as const;

export type FlagBits = number;

/** How a capability is provided: not at all, emulated by the engine, or by the plugin. */
export type Support = 'none' | 'emulate' | 'native';
