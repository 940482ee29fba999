/** validateRequest: every rule, with the error and the reason it reports. */
import { describe, expect, it } from 'vitest';
import { Cmd, CmdFlag, NbdErr, newRequestHeader, type RequestHeader } from '@nbdts/protocol';
import type { Capabilities } from '../src/backend.ts';
import { validateRequest, type Session } from '../src/validate.ts';

const caps = (over: Partial<Capabilities> = {}): Capabilities => ({
  size: 1 << 20,
  canWrite: true,
  canFlush: true,
  canTrim: true,
  zero: 'native',
  canFastZero: true,
  fua: 'native',
  canExtents: true,
  cache: 'native',
  canMultiConn: false,
  rotational: false,
  blockSize: { minimum: 1, preferred: 4096, maximum: 32 << 20 },
  pluginBlockSize: false,
  ...over,
});

const session = (c: Partial<Capabilities> = {}, s: Partial<Session> = {}): Session => ({
  caps: caps(c),
  structured: true,
  contexts: true,
  ...s,
});

function req(type: number, offset: number, length: number, flags = 0): RequestHeader {
  return Object.assign(newRequestHeader(), { type, offset, length, flags });
}

/** [errno, reason] or 'ok'. */
function check(h: RequestHeader, s: Session): [number, string] | 'ok' {
  const r = validateRequest(h, s);
  return r === undefined ? 'ok' : [r.errno, r.reason];
}

describe('validateRequest', () => {
  it('accepts well-formed requests of every command', () => {
    const s = session();
    expect(check(req(Cmd.READ, 0, 4096, CmdFlag.DF | CmdFlag.FUA), s)).toBe('ok');
    expect(check(req(Cmd.WRITE, 4096, 4096, CmdFlag.FUA), s)).toBe('ok');
    expect(check(req(Cmd.FLUSH, 0, 0), s)).toBe('ok');
    expect(check(req(Cmd.TRIM, 0, 1 << 20), s)).toBe('ok');
    expect(check(req(Cmd.WRITE_ZEROES, 0, 512, CmdFlag.NO_HOLE | CmdFlag.FAST_ZERO), s)).toBe('ok');
    expect(check(req(Cmd.CACHE, 0, 512), s)).toBe('ok');
    expect(check(req(Cmd.BLOCK_STATUS, 0, 1 << 20, CmdFlag.REQ_ONE), s)).toBe('ok');
  });

  it('refuses unknown commands and flags the command or export does not take', () => {
    const s = session();
    expect(check(req(99, 0, 512), s)).toEqual([NbdErr.EINVAL, 'unknown command']);
    expect(check(req(Cmd.WRITE, 0, 512, CmdFlag.DF), s)).toEqual([NbdErr.EINVAL, expect.stringMatching(/flags/)]);
    // DF needs structured replies; FUA needs an export that takes it; FAST_ZERO one that can.
    expect(check(req(Cmd.READ, 0, 512, CmdFlag.DF), session({}, { structured: false }))[0]).toBe(NbdErr.EINVAL);
    expect(check(req(Cmd.WRITE, 0, 512, CmdFlag.FUA), session({ fua: 'none' }))[0]).toBe(NbdErr.EINVAL);
    const zs = session({ canFastZero: false });
    expect(check(req(Cmd.WRITE_ZEROES, 0, 512, CmdFlag.FAST_ZERO), zs)[0]).toBe(NbdErr.EINVAL);
  });

  it('refuses writes to a read-only export with EPERM and unsupported commands with EINVAL', () => {
    const ro = session({ canWrite: false });
    for (const t of [Cmd.WRITE, Cmd.TRIM, Cmd.WRITE_ZEROES]) {
      expect(check(req(t, 0, 512), ro)).toEqual([NbdErr.EPERM, 'the export is read-only']);
    }
    expect(check(req(Cmd.TRIM, 0, 512), session({ canTrim: false }))[1]).toMatch(/trim/);
    expect(check(req(Cmd.WRITE_ZEROES, 0, 512), session({ zero: 'none' }))[1]).toMatch(/write zeroes/);
    expect(check(req(Cmd.FLUSH, 0, 0), session({ canFlush: false }))[1]).toMatch(/flush/);
    expect(check(req(Cmd.CACHE, 0, 512), session({ cache: 'none' }))[1]).toMatch(/cache/);
    expect(check(req(Cmd.BLOCK_STATUS, 0, 512), session({}, { contexts: false }))[1]).toMatch(/meta context/);
    expect(check(req(Cmd.FLUSH, 0, 512), session())).toEqual([NbdErr.EINVAL, 'flush must have offset and length 0']);
  });

  it('checks lengths, bounds and block size constraints', () => {
    const s = session({ blockSize: { minimum: 512, preferred: 4096, maximum: 65536 } });
    expect(check(req(Cmd.READ, 0, 0), s)).toEqual([NbdErr.EINVAL, 'length 0']);
    expect(check(req(Cmd.READ, (1 << 20) - 512, 1024), s)[1]).toMatch(/past the end/);
    expect(check(req(Cmd.WRITE, (1 << 20) - 512, 1024), s)[0]).toBe(NbdErr.ENOSPC);
    expect(check(req(Cmd.WRITE_ZEROES, 1 << 20, 512), s)[0]).toBe(NbdErr.ENOSPC);
    expect(check(req(Cmd.TRIM, 1 << 20, 512), s)[0]).toBe(NbdErr.EINVAL);
    // An offset near 2^64 is past the end too (no wrap-around).
    expect(check(req(Cmd.READ, 2 ** 64 - 512, 512), s)[1]).toMatch(/past the end/);
    expect(check(req(Cmd.READ, 100, 512), s)[1]).toMatch(/minimum block size/);
    expect(check(req(Cmd.READ, 0, 100), s)[1]).toMatch(/minimum block size/);
    expect(check(req(Cmd.READ, 0, 131072), s)[1]).toMatch(/maximum block size/);
    // The maximum applies to data-carrying commands only.
    expect(check(req(Cmd.TRIM, 0, 131072), s)).toBe('ok');
  });

  it('allocates nothing for a valid request and reuses its reasons', () => {
    const s = session();
    const a = validateRequest(req(Cmd.READ, 0, 0), s);
    const b = validateRequest(req(Cmd.WRITE, 0, 0), s);
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
  });
});
