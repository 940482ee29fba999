/**
 * A plugin's extents turned into a block status reply's descriptors: clipped
 * to the request, neighbours of one type merged, cut at the first gap, at
 * most one descriptor with REQ_ONE, and a bounded number in all.
 */
import type { Extent } from '@nbdts/plugin-api';

/** Most descriptors sent in one block status reply (bounds reply size). */
export const MAX_EXTENTS = 1 << 16;

/** [length, flags, length, flags, ...] from `offset`, covering at most `length` bytes. */
export function extentDescriptors(
  extents: readonly Extent[],
  offset: number,
  length: number,
  reqOne: boolean,
): number[] {
  const end = offset + length;
  let pos = offset;
  const desc: number[] = [];
  for (const e of extents) {
    const eEnd = e.offset + e.length;
    if (!(e.length > 0) || eEnd <= pos) continue;
    if (e.offset > pos) break; // a gap: report what is contiguous so far
    const type = e.type & 3;
    const take = Math.min(eEnd, end) - pos;
    const n = desc.length;
    if (n > 0 && desc[n - 1] === type) desc[n - 2]! += take;
    else {
      if (n / 2 >= MAX_EXTENTS || (reqOne && n > 0)) break;
      desc.push(take, type);
    }
    pos += take;
    if (pos >= end) break;
  }
  if (desc.length === 0) throw new Error(`plugin returned no extent covering offset ${offset}`);
  return desc;
}
