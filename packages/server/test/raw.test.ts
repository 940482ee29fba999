/** Protocol edge cases through the raw test client: exact bytes, exact error codes. */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ClientFlag,
  Cmd,
  CmdFlag,
  Info,
  NbdErr,
  Opt,
  Rep,
  ReplyType,
  TxFlag,
  encodeInfoRequest,
  encodeMetaContextRequest,
} from '@nbdts/protocol';
import { lent, type Plugin } from '@nbdts/plugin-api';
import { RawClient } from '@nbdts/testkit';
import { memPlugin } from './mem-plugin.ts';
import { run, start, type Running } from './helpers.ts';

const MiB = 1024 * 1024;

async function nbdinfoOk(s: Running): Promise<void> {
  const r = await run('nbdinfo', ['--size', s.uri]);
  expect(r.code, r.stderr).toBe(0);
  expect(Number(r.stdout.trim())).toBeGreaterThan(0);
}

describe('handshake', () => {
  let s: Running;
  const clients: RawClient[] = [];
  const connect = async (): Promise<RawClient> => {
    const c = await RawClient.connect(s.path);
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    s = await start({ size: 8 * MiB, exports: ['', 'second'], description: 'desc' });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
  });
  afterAll(async () => {
    await s.stop();
  });

  it('greets with fixed newstyle and no-zeroes', async () => {
    const c = await connect();
    expect(await c.readGreeting()).toBe(3);
  });

  it('closes on unknown client flags', async () => {
    const c = await connect();
    await c.start(ClientFlag.FIXED_NEWSTYLE | 0x100);
    expect(await c.waitClosed()).toBe(true);
  });

  it('closes on a bad option magic', async () => {
    const c = await connect();
    await c.start();
    const b = Buffer.alloc(16);
    b.write('NOTMAGIC', 0, 'latin1');
    c.write(b);
    expect(await c.waitClosed()).toBe(true);
  });

  it('answers unknown options with ERR_UNSUP and carries on', async () => {
    const c = await connect();
    await c.start();
    const r = await c.option(99, Buffer.from('hello'));
    expect(r.final.type).toBe(Rep.ERR_UNSUP);
    expect(r.final.option).toBe(99);
    const ext = await c.option(Opt.EXTENDED_HEADERS);
    expect(ext.final.type).toBe(Rep.ERR_UNSUP);
    const go = await c.go('');
    expect(go.type).toBe(Rep.ACK);
    expect(go.details.size).toBe(BigInt(8 * MiB));
  });

  it('refuses STARTTLS by policy', async () => {
    const c = await connect();
    await c.start();
    expect((await c.option(Opt.STARTTLS)).final.type).toBe(Rep.ERR_POLICY);
  });

  it('rejects malformed option data with ERR_INVALID', async () => {
    const c = await connect();
    await c.start();
    expect((await c.option(Opt.LIST, Buffer.from('x'))).final.type).toBe(Rep.ERR_INVALID);
    expect((await c.option(Opt.STRUCTURED_REPLY, Buffer.from('x'))).final.type).toBe(Rep.ERR_INVALID);
    // SET_META_CONTEXT before structured replies
    expect((await c.option(Opt.SET_META_CONTEXT, encodeMetaContextRequest('', ['base:allocation']))).final.type).toBe(
      Rep.ERR_INVALID,
    );
    // name length larger than the option
    const bad = encodeInfoRequest('abc', []);
    bad.writeUInt32BE(1000, 0);
    expect((await c.option(Opt.INFO, bad)).final.type).toBe(Rep.ERR_INVALID);
    // info count not matching the length
    const odd = Buffer.concat([encodeInfoRequest('', [Info.NAME]), Buffer.from([0])]);
    expect((await c.option(Opt.GO, odd)).final.type).toBe(Rep.ERR_INVALID);
    // too short for a GO at all
    expect((await c.option(Opt.GO, Buffer.from([0, 0]))).final.type).toBe(Rep.ERR_INVALID);
    expect(await c.structuredReply()).toBe(Rep.ACK);
    expect(await c.structuredReply()).toBe(Rep.ERR_INVALID); // already negotiated
    // query count far beyond the data
    const q = encodeMetaContextRequest('', ['base:allocation']);
    q.writeUInt32BE(0xffffffff, 4);
    expect((await c.option(Opt.LIST_META_CONTEXT, q)).final.type).toBe(Rep.ERR_INVALID);
    // query without a namespace
    expect((await c.listMetaContext('', ['allocation'])).type).toBe(Rep.ERR_INVALID);
    expect((await c.go('')).type).toBe(Rep.ACK);
  });

  it('refuses an oversized option without buffering it, and stays usable', async () => {
    const c = await connect();
    await c.start();
    const len = 3 * MiB;
    c.sendOption(Opt.INFO, Buffer.alloc(len, 0x41), len);
    const r = await c.readOptionReply();
    expect(r.type).toBe(Rep.ERR_TOO_BIG);
    expect(r.option).toBe(Opt.INFO);
    expect((await c.go('')).type).toBe(Rep.ACK);
  });

  it('survives a 4 GiB option length followed by a hang-up', async () => {
    const c = await connect();
    await c.start();
    c.sendOption(Opt.SET_META_CONTEXT, Buffer.alloc(2 * MiB), 0xffffffff);
    await sleep(50);
    c.destroy();
    await nbdinfoOk(s);
  });

  it('ACKs ABORT and closes', async () => {
    const c = await connect();
    await c.start();
    c.sendOption(Opt.ABORT);
    const r = await c.readOptionReply();
    expect(r.type).toBe(Rep.ACK);
    expect(await c.waitClosed()).toBe(true);
  });

  it('EXPORT_NAME replies with size and flags, honouring NO_ZEROES', async () => {
    const c = await connect();
    await c.start(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES);
    c.sendOption(Opt.EXPORT_NAME, Buffer.from('second'));
    const b = await c.read(10);
    expect(b.readBigUInt64BE(0)).toBe(BigInt(8 * MiB));
    expect(b.readUInt16BE(8) & TxFlag.HAS_FLAGS).toBe(1);
    expect(b.readUInt16BE(8) & TxFlag.SEND_DF).toBe(0); // no structured replies negotiated
    const rd = await c.call({ type: Cmd.READ, cookie: 7n, offset: 0, length: 512 });
    expect(rd.error).toBe(0);
    expect(rd.data!.length).toBe(512);

    const z = await connect();
    await z.start(ClientFlag.FIXED_NEWSTYLE);
    z.sendOption(Opt.EXPORT_NAME, Buffer.alloc(0));
    const full = await z.read(134);
    expect(full.subarray(10).equals(Buffer.alloc(124))).toBe(true);
  });

  it('EXPORT_NAME of an unknown export closes the connection', async () => {
    const c = await connect();
    await c.start();
    c.sendOption(Opt.EXPORT_NAME, Buffer.from('nosuch'));
    expect(await c.waitClosed()).toBe(true);
    expect(c.buffered).toBe(0);
  });

  it('INFO: unknown export is ERR_UNKNOWN; known export gives name, description, block size', async () => {
    const c = await connect();
    await c.start();
    expect((await c.info('nosuch')).type).toBe(Rep.ERR_UNKNOWN);
    const r = await c.info('second');
    expect(r.type).toBe(Rep.ACK);
    expect(r.details).toEqual({
      size: BigInt(8 * MiB),
      flags: r.details.flags,
      name: 'second',
      description: 'desc',
      blockSize: { minimum: 1, preferred: 4096, maximum: 32 * MiB },
    });
    expect(r.details.flags & TxFlag.READ_ONLY).toBe(0);
    // Without requests only NBD_INFO_EXPORT comes back.
    const bare = await c.info('', []);
    expect(bare.type).toBe(Rep.ACK);
    expect(bare.details.name).toBeUndefined();
    expect(bare.details.blockSize).toBeUndefined();
  });

  it('meta context queries follow the spec matching rules', async () => {
    const c = await connect();
    await c.start();
    expect(await c.structuredReply()).toBe(Rep.ACK);
    expect(await c.listMetaContext('', [])).toEqual({ type: Rep.ACK, contexts: ['base:allocation'] });
    expect(await c.listMetaContext('', ['base:'])).toEqual({ type: Rep.ACK, contexts: ['base:allocation'] });
    expect(await c.listMetaContext('', ['qemu:dirty-bitmap:x'])).toEqual({ type: Rep.ACK, contexts: [] });
    expect(await c.listMetaContext('', ['base:nosuch'])).toEqual({ type: Rep.ACK, contexts: [] });
    expect((await c.setMetaContext('', ['base:'])).contexts).toEqual([]);
    expect((await c.setMetaContext('', [])).contexts).toEqual([]);
    const set = await c.setMetaContext('', ['x-foo:bar', 'base:allocation']);
    expect(set.type).toBe(Rep.ACK);
    expect(set.contexts.map((x) => x.name)).toEqual(['base:allocation']);
    expect(set.contexts[0]!.id).not.toBe(0);
    expect((await c.go('')).type).toBe(Rep.ACK);
    const bs = await c.call({ type: Cmd.BLOCK_STATUS, cookie: 1n, offset: 0, length: 4096 });
    expect(bs.error).toBe(0);
    expect(bs.extents!.get(set.contexts[0]!.id)).toEqual([{ length: 4096, flags: 3 }]);
  });

  it('block status is EINVAL when the context was set for another export', async () => {
    const c = await connect();
    await c.start();
    await c.structuredReply();
    await c.setMetaContext('second', ['base:allocation']);
    expect((await c.go('')).type).toBe(Rep.ACK);
    const bs = await c.call({ type: Cmd.BLOCK_STATUS, cookie: 1n, offset: 0, length: 4096 });
    expect(bs.error).toBe(NbdErr.EINVAL);
  });

  it('drops a client that never finishes the handshake', async () => {
    const t = await start({ size: MiB }, { handshakeTimeoutMs: 200 });
    try {
      const c = await RawClient.connect(t.path);
      clients.push(c);
      await c.readGreeting();
      expect(await c.waitClosed(3000)).toBe(true);
    } finally {
      await t.stop();
    }
  });
});

describe('default export', () => {
  it('resolves "" through plugin.defaultExport', async () => {
    const { plugin } = memPlugin({ size: MiB, exports: ['alpha', 'beta'] });
    const opened: string[] = [];
    const p: Plugin<unknown, unknown> = {
      ...plugin,
      defaultExport: () => 'beta',
      open: (name, ro) => {
        opened.push(name);
        return plugin.open(name, ro);
      },
    };
    const s = await start(p);
    try {
      const c = await RawClient.connect(s.path);
      await c.start();
      const r = await c.info('', [Info.NAME]);
      expect(r.type).toBe(Rep.ACK);
      expect(r.details.name).toBe('beta');
      expect(opened).toEqual(['beta']);
      c.destroy();
    } finally {
      await s.stop();
    }
  });
});

describe('transmission', () => {
  let s: Running;
  let opens = 0;
  let closes = 0;
  beforeAll(async () => {
    s = await start(
      {
        size: 8 * MiB,
        onOpen: () => {
          opens++;
        },
        onClose: () => {
          closes++;
        },
        omit: ['zero'],
      },
      { maxPayload: 4 * MiB },
    );
  });
  afterAll(async () => {
    await s.stop();
  });

  it('rejects unknown commands and misplaced flags with EINVAL', async () => {
    const { c } = await RawClient.open(s.path, { structured: false });
    expect((await c.call({ type: 42, cookie: 1n, offset: 0, length: 512 })).error).toBe(NbdErr.EINVAL);
    // DF without structured replies
    const df = await c.call({ type: Cmd.READ, flags: CmdFlag.DF, cookie: 2n, offset: 0, length: 512 });
    expect(df).toMatchObject({ error: NbdErr.EINVAL, structured: false });
    expect(df.data).toBeUndefined();
    // REQ_ONE on a read, NO_HOLE on a read, unknown bit
    for (const flags of [CmdFlag.REQ_ONE, CmdFlag.NO_HOLE, 1 << 9]) {
      expect((await c.call({ type: Cmd.READ, flags, cookie: 3n, offset: 0, length: 512 })).error).toBe(NbdErr.EINVAL);
    }
    // BLOCK_STATUS without a context; FLUSH with a length
    expect((await c.call({ type: Cmd.BLOCK_STATUS, cookie: 4n, offset: 0, length: 512 })).error).toBe(NbdErr.EINVAL);
    expect((await c.call({ type: Cmd.FLUSH, cookie: 5n, offset: 0, length: 512 })).error).toBe(NbdErr.EINVAL);
    // still in sync
    expect((await c.call({ type: Cmd.FLUSH, cookie: 6n, offset: 0, length: 0 })).error).toBe(0);
    c.destroy();
  });

  it('consumes the payload of a rejected write so the stream stays in sync', async () => {
    const { c } = await RawClient.open(s.path, { structured: false });
    const size = 8 * MiB;
    // past the end: ENOSPC, payload must be skipped
    const junk = Buffer.alloc(8192, 0xee);
    c.request({ type: Cmd.WRITE, cookie: 1n, offset: size - 4096, length: 8192 }, junk);
    // unknown flag on a write
    c.request({ type: Cmd.WRITE, flags: 1 << 10, cookie: 2n, offset: 0, length: 4096 }, junk.subarray(0, 4096));
    // bigger than maxPayload (4 MiB here): refused, 5 MiB discarded
    c.request({ type: Cmd.WRITE, cookie: 3n, offset: 0, length: 5 * MiB }, Buffer.alloc(5 * MiB, 0xee));
    c.request({ type: Cmd.WRITE, cookie: 4n, offset: 0, length: 4096 }, Buffer.alloc(4096, 0x5a));
    c.request({ type: Cmd.READ, cookie: 5n, offset: 0, length: 4096 });
    const replies = new Map<bigint, { error: number; data?: Buffer }>();
    for (let i = 0; i < 5; i++) {
      const r = await c.reply();
      replies.set(r.cookie, r);
    }
    expect(replies.get(1n)!.error).toBe(NbdErr.ENOSPC);
    expect(replies.get(2n)!.error).toBe(NbdErr.EINVAL);
    expect(replies.get(3n)!.error).toBe(NbdErr.EINVAL);
    expect(replies.get(4n)!.error).toBe(0);
    expect(replies.get(5n)!.data!.equals(Buffer.alloc(4096, 0x5a))).toBe(true);
    c.destroy();
  });

  it('parses a request split into single bytes', async () => {
    const { c } = await RawClient.open(s.path, { structured: false });
    const { encodeRequest } = await import('@nbdts/protocol');
    const frame = encodeRequest(
      { type: Cmd.WRITE, cookie: 0x1122334455667788n, offset: 8192, length: 100 },
      Buffer.alloc(100, 7),
    );
    for (const byte of frame) {
      c.write(Buffer.from([byte]));
    }
    const r = await c.reply();
    expect(r).toMatchObject({ cookie: 0x1122334455667788n, error: 0 });
    const rd = await c.call({ type: Cmd.READ, cookie: 9n, offset: 8192, length: 100 });
    expect(rd.data!.equals(Buffer.alloc(100, 7))).toBe(true);
    c.destroy();
  });

  it('structured reads: one OFFSET_DATA chunk (also with DF), errors as ERROR chunks', async () => {
    const { c, details } = await RawClient.open(s.path);
    expect(details.flags & TxFlag.SEND_DF).toBeTruthy();
    const r = await c.call({ type: Cmd.READ, flags: CmdFlag.DF, cookie: 1n, offset: 0, length: 65536 });
    expect(r.error).toBe(0);
    expect(r.chunkTypes).toEqual([ReplyType.OFFSET_DATA]);
    const e = await c.call({ type: Cmd.READ, cookie: 2n, offset: 8 * MiB, length: 512 });
    expect(e.error).toBe(NbdErr.EINVAL);
    expect(e.chunkTypes).toEqual([ReplyType.ERROR]);
    const wrap = await c.call({ type: Cmd.READ, cookie: 3n, offset: 0xffffffffffffff00n, length: 512 });
    expect(wrap.error).toBe(NbdErr.EINVAL);
    c.destroy();
  });

  it('emulated zero: FAST_ZERO fails with ENOTSUP, plain zero writes zeros', async () => {
    const { c, details } = await RawClient.open(s.path);
    expect(details.flags & TxFlag.SEND_WRITE_ZEROES).toBeTruthy();
    await c.call({ type: Cmd.WRITE, cookie: 1n, offset: 0, length: 4096 }, Buffer.alloc(4096, 1));
    const fast = await c.call({
      type: Cmd.WRITE_ZEROES,
      flags: CmdFlag.FAST_ZERO,
      cookie: 2n,
      offset: 0,
      length: 4096,
    });
    expect(fast.error).toBe(NbdErr.ENOTSUP);
    expect(
      (await c.call({ type: Cmd.READ, cookie: 3n, offset: 0, length: 4096 })).data!.equals(Buffer.alloc(4096, 1)),
    ).toBe(true);
    const z = await c.call({ type: Cmd.WRITE_ZEROES, flags: CmdFlag.NO_HOLE, cookie: 4n, offset: 0, length: 4096 });
    expect(z.error).toBe(0);
    expect(
      (await c.call({ type: Cmd.READ, cookie: 5n, offset: 0, length: 4096 })).data!.equals(Buffer.alloc(4096)),
    ).toBe(true);
    c.destroy();
  });

  it('closes only the offending connection on a bad request magic', async () => {
    const { c: good } = await RawClient.open(s.path);
    const { c: bad } = await RawClient.open(s.path);
    bad.request({ type: Cmd.READ, cookie: 1n, offset: 0, length: 512, magic: 0xdeadbeef });
    expect(await bad.waitClosed()).toBe(true);
    expect((await good.call({ type: Cmd.READ, cookie: 2n, offset: 0, length: 512 })).error).toBe(0);
    good.destroy();
  });

  it('DISC: replies to in-flight requests, then closes', async () => {
    const { c } = await RawClient.open(s.path, { structured: false });
    for (let i = 0; i < 50; i++) c.request({ type: Cmd.READ, cookie: BigInt(i), offset: i * 4096, length: 4096 });
    c.disconnect();
    const cookies = new Set<bigint>();
    for (let i = 0; i < 50; i++) cookies.add((await c.reply()).cookie);
    expect(cookies.size).toBe(50);
    expect(await c.waitClosed()).toBe(true);
  });

  it('survives pipelined requests followed by an abrupt close, 20 times', async () => {
    const before = opens;
    for (let round = 0; round < 20; round++) {
      const { c } = await RawClient.open(s.path, { structured: round % 2 === 0 });
      for (let i = 0; i < 300; i++) {
        if (i % 3 === 0)
          c.request(
            { type: Cmd.WRITE, cookie: BigInt(i), offset: (i * 4096) % (8 * MiB), length: 4096 },
            Buffer.alloc(4096, i),
          );
        else c.request({ type: Cmd.READ, cookie: BigInt(i), offset: (i * 65536) % (8 * MiB), length: 65536 });
      }
      // half a header at the end
      c.write(Buffer.alloc(10, 0x25));
      c.destroy();
    }
    await nbdinfoOk(s);
    await sleep(200);
    expect(opens - before).toBeGreaterThanOrEqual(21);
    expect(closes).toBe(opens);
    expect(s.server.connectionCount).toBe(0);
  });
});

describe('slow plugin', () => {
  it('serves many requests in flight and replies in completion order', async () => {
    const { plugin } = memPlugin({ size: MiB });
    const p: Plugin<unknown, unknown> = {
      ...plugin,
      // Later offsets finish first.
      pread: async (h, buf, offset, flags) => {
        await sleep(offset === 0 ? 150 : 10);
        return plugin.pread!(h, buf, offset, flags);
      },
    };
    const s = await start(p);
    try {
      const { c } = await RawClient.open(s.path, { structured: false });
      c.request({ type: Cmd.READ, cookie: 1n, offset: 0, length: 512 });
      c.request({ type: Cmd.READ, cookie: 2n, offset: 4096, length: 512 });
      expect((await c.reply()).cookie).toBe(2n);
      expect((await c.reply()).cookie).toBe(1n);
      c.destroy();
    } finally {
      await s.stop();
    }
  });

  it('DISC with slow reads in flight: every reply is sent, then the handle closes, then the socket', async () => {
    const events: string[] = [];
    const { plugin } = memPlugin({
      size: MiB,
      onClose: () => {
        events.push('close');
      },
    });
    const p: Plugin<unknown, unknown> = {
      ...plugin,
      pread: async (h, buf, offset, flags) => {
        await sleep(50 + (offset % 7) * 10);
        events.push('read');
        return plugin.pread!(h, buf, offset, flags);
      },
    };
    const s = await start(p);
    try {
      const { c } = await RawClient.open(s.path);
      for (let i = 0; i < 10; i++) c.request({ type: Cmd.READ, cookie: BigInt(i), offset: i * 4096, length: 4096 });
      c.disconnect();
      const got = new Set<bigint>();
      for (let i = 0; i < 10; i++) {
        const r = await c.reply();
        expect(r.error).toBe(0);
        got.add(r.cookie);
      }
      expect(got.size).toBe(10);
      expect(await c.waitClosed()).toBe(true);
      expect(events).toEqual([...Array(10).fill('read'), 'close']);
    } finally {
      await s.stop();
    }
  });

  it('plugin failures become NBD errors with the mapped errno', async () => {
    const { plugin } = memPlugin({ size: MiB });
    const codes = ['EROFS', 'EDQUOT', 'EAGAIN', 'EOPNOTSUPP', 'EWHATEVER'];
    let i = 0;
    const p: Plugin<unknown, unknown> = {
      ...plugin,
      pread: () => {
        const code = codes[i++ % codes.length]!;
        if (code === 'EWHATEVER') throw new Error('plain bug');
        throw Object.assign(new Error(code), { code });
      },
    };
    const s = await start(p);
    try {
      const { c } = await RawClient.open(s.path);
      const got: number[] = [];
      for (let k = 0; k < codes.length; k++)
        got.push((await c.call({ type: Cmd.READ, cookie: BigInt(k), offset: 0, length: 512 })).error);
      expect(got).toEqual([NbdErr.EPERM, NbdErr.ENOSPC, NbdErr.ENOMEM, NbdErr.ENOTSUP, NbdErr.EIO]);
      c.destroy();
    } finally {
      await s.stop();
    }
  });

  it('bounded memory: many large writes with a small in-flight limit all complete', async () => {
    const s = await start({ size: 64 * MiB, async: true }, { maxInFlightBytes: MiB });
    try {
      const { c } = await RawClient.open(s.path, { structured: false });
      const n = 64;
      for (let i = 0; i < n; i++)
        c.request(
          { type: Cmd.WRITE, cookie: BigInt(i), offset: i * 256 * 1024, length: 256 * 1024 },
          Buffer.alloc(256 * 1024, i),
        );
      const seen = new Set<bigint>();
      for (let i = 0; i < n; i++) {
        const r = await c.reply();
        expect(r.error).toBe(0);
        seen.add(r.cookie);
      }
      expect(seen.size).toBe(n);
      const rd = await c.call({ type: Cmd.READ, cookie: 999n, offset: 63 * 256 * 1024, length: 256 * 1024 });
      expect(rd.data!.equals(Buffer.alloc(256 * 1024, 63))).toBe(true);
      c.destroy();
    } finally {
      await s.stop();
    }
  });
});

describe('data integrity under pipelining', () => {
  for (const mode of [
    { async: false, zeroCopy: false },
    { async: true, zeroCopy: true },
  ]) {
    it(`pipelined writes of mixed sizes read back intact (${mode.async ? 'async' : 'sync'} plugin)`, async () => {
      const { randomBytes } = await import('node:crypto');
      const size = 32 * MiB;
      const s = await start({ size, ...mode });
      try {
        const model = Buffer.alloc(size);
        for (const structured of [false, true]) {
          const { c } = await RawClient.open(s.path, { structured });
          // Non-overlapping regions so concurrent writes have one right answer.
          const ops: { offset: number; length: number }[] = [];
          let off = structured ? 16 * MiB : 0;
          const seed = randomBytes(4096);
          for (let i = 0; off < (structured ? 32 : 16) * MiB - 400_000; i++) {
            const length = 1 + ((seed.readUInt16BE((i * 2) % 4094) * 7 + i * 4099) % 300_000);
            ops.push({ offset: off, length });
            off += length + (i % 5) * 512;
          }
          for (const [i, op] of ops.entries()) {
            const data = randomBytes(op.length);
            data.copy(model, op.offset);
            c.request({ type: Cmd.WRITE, cookie: BigInt(i), offset: op.offset, length: op.length }, data);
          }
          for (let i = 0; i < ops.length; i++) expect((await c.reply()).error).toBe(0);
          const chunk = 256 * 1024;
          const base = structured ? 16 * MiB : 0;
          for (let i = 0; i < 64; i++)
            c.request({ type: Cmd.READ, cookie: BigInt(1000 + i), offset: base + i * chunk, length: chunk });
          for (let i = 0; i < 64; i++) {
            const r = await c.reply();
            const at = base + Number(r.cookie - 1000n) * chunk;
            expect(r.data!.equals(model.subarray(at, at + chunk))).toBe(true);
          }
          c.destroy();
        }
      } finally {
        await s.stop();
      }
    });
  }
});

describe('flow control', () => {
  it('stops reading requests while replies pile up unread, then serves them all', async () => {
    const s = await start({ size: 8 * MiB }, { maxInFlightBytes: 256 * 1024 });
    try {
      const { c } = await RawClient.open(s.path, { structured: false });
      const n = 20000;
      c.socket.pause(); // do not read replies yet
      for (let i = 0; i < n; i++)
        c.request({ type: Cmd.READ, cookie: BigInt(i), offset: (i % 8192) * 1024, length: 1024 });
      await sleep(500);
      // The server stopped reading: most of our requests are still queued on our side.
      expect(c.socket.writableLength).toBeGreaterThan(100_000);
      c.socket.resume();
      let ok = 0;
      for (let i = 0; i < n; i++) if ((await c.reply()).error === 0) ok++;
      expect(ok).toBe(n);
      c.destroy();
    } finally {
      await s.stop();
    }
  });
});

describe('shutdown', () => {
  it('lets in-flight requests finish, flushes and closes handles', async () => {
    const flushes = { count: 0 };
    let closed = 0;
    const { plugin } = memPlugin({
      size: MiB,
      flushes,
      onClose: () => {
        closed++;
      },
    });
    const p: Plugin<unknown, unknown> = {
      ...plugin,
      pwrite: async (h, buf, off, f) => {
        await sleep(100);
        return plugin.pwrite!(h, buf, off, f);
      },
    };
    const s = await start(p);
    const { c } = await RawClient.open(s.path, { structured: false });
    c.request({ type: Cmd.WRITE, cookie: 1n, offset: 0, length: 512 }, Buffer.alloc(512, 1));
    await sleep(20);
    const done = s.server.shutdown();
    const r = await c.reply();
    expect(r.error).toBe(0);
    await done;
    expect(flushes.count).toBe(1);
    expect(closed).toBe(1);
    expect(await c.waitClosed()).toBe(true);
    // no longer accepting
    await expect(RawClient.connect(s.path)).rejects.toThrow();
    await s.stop();
  });

  it('destroy drops every connection at once', async () => {
    const s = await start({ size: MiB });
    const { c } = await RawClient.open(s.path);
    const idle = await RawClient.connect(s.path);
    await idle.readGreeting();
    expect(s.server.connectionCount).toBe(2);
    s.server.destroy();
    expect(await c.waitClosed()).toBe(true);
    expect(await idle.waitClosed()).toBe(true);
    await s.stop();
  });
});

describe('lent read buffers', () => {
  /** A plugin whose reads return two lent views of a constant pattern, optionally late. */
  function lending(delayMs: number) {
    const counts = { lent: 0, released: 0 };
    const pattern = Buffer.alloc(2 * MiB, 0x5a);
    const p: Plugin<unknown, unknown> = {
      name: 'lending',
      open: () => ({}),
      getSize: () => 2 * MiB,
      read: async (_h, count, offset) => {
        if (delayMs) await sleep(delayMs);
        counts.lent++;
        const half = Math.floor(count / 2);
        return lent([pattern.subarray(offset, offset + half), pattern.subarray(offset + half, offset + count)], () => {
          counts.released++;
        });
      },
    };
    return { p, counts };
  }

  it('are released once each, after their reply is written', async () => {
    const { p, counts } = lending(0);
    const s = await start(p);
    try {
      const { c } = await RawClient.open(s.path, { structured: false });
      for (let i = 0; i < 100; i++) c.request({ type: Cmd.READ, cookie: BigInt(i), offset: i * 4096, length: 8192 });
      for (let i = 0; i < 100; i++) {
        const r = await c.reply();
        expect(r.error).toBe(0);
        expect(r.data!.equals(Buffer.alloc(8192, 0x5a))).toBe(true);
      }
      await vi.waitFor(() => expect(counts.released).toBe(100));
      expect(counts.lent).toBe(100);
      c.destroy();
    } finally {
      await s.stop();
    }
  });

  it('are released when the client is gone before the reply', async () => {
    const { p, counts } = lending(50);
    const s = await start(p);
    try {
      const { c } = await RawClient.open(s.path, { structured: false });
      for (let i = 0; i < 20; i++) c.request({ type: Cmd.READ, cookie: BigInt(i), offset: 0, length: 4096 });
      await sleep(10);
      c.destroy();
      await vi.waitFor(() => expect(counts.lent).toBe(20));
      await vi.waitFor(() => expect(counts.released).toBe(20));
    } finally {
      await s.stop();
    }
  });
});

describe('invalid requests', () => {
  it('are answered with the error, and the reason is logged at debug level', async () => {
    const lines: string[] = [];
    const { Writable } = await import('node:stream');
    const pino = (await import('pino')).default;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        cb();
      },
    });
    const s = await start({ size: MiB }, { logger: pino({ level: 'debug' }, sink) });
    try {
      const { c } = await RawClient.open(s.path, { structured: true });
      const r = await c.call({ type: Cmd.READ, cookie: 7n, offset: MiB - 512, length: 1024 });
      expect(r.error).toBe(NbdErr.EINVAL);
      c.destroy();
      const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.reason !== undefined);
      expect(line).toMatchObject({ level: 20, cmd: 'READ', reason: 'request past the end of the export' });
      expect(line!.msg).toBe('invalid request: EINVAL');
    } finally {
      await s.stop();
    }
  });
});
