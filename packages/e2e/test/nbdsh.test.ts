// libnbd (through nbdsh) with strict mode off, so requests the client library
// would normally refuse reach the server: the server must answer with the
// right NBD error, and keep serving. Also 32 MiB requests, FUA, fast zero,
// unaligned I/O and many requests in flight at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NBDSH_TRYIT, nbdshOk, requireTool, startServer, type ServerProcess } from '@nbdts/testkit';

const MiB = 1 << 20;

// Prelude for every script: try(f) -> 'ok' or the errno name of the nbd.Error.
const PRELUDE = `${NBDSH_TRYIT}
import json, os
h.set_strict_mode(0)
`;

async function py(uri: string, body: string): Promise<Record<string, unknown>> {
  const out = await nbdshOk(`${PRELUDE}\nr = {}\n${body}\nprint(json.dumps(r))`, uri, { timeoutMs: 60_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

describe('nbdsh: errors through libnbd, memory size=1M', () => {
  let rw: ServerProcess;
  let ro: ServerProcess;
  beforeAll(async () => {
    requireTool('nbdsh');
    [rw, ro] = await Promise.all([startServer(['memory', 'size=1M']), startServer(['-r', 'memory', 'size=1M'])]);
  });
  afterAll(async () => {
    await Promise.all([rw?.stop(), ro?.stop()]);
  });

  it('out-of-range requests fail with the errno the spec asks for', async () => {
    const r = await py(
      rw.uri,
      `
size = h.get_size()
r["read_straddle"] = tryit(lambda: h.pread(8192, size - 4096))
r["read_beyond"] = tryit(lambda: h.pread(512, size + 4096))
r["write_straddle"] = tryit(lambda: h.pwrite(b"x" * 8192, size - 4096))
r["write_beyond"] = tryit(lambda: h.pwrite(b"x" * 512, size))
r["zero_beyond"] = tryit(lambda: h.zero(4096, size))
r["trim_beyond"] = tryit(lambda: h.trim(4096, size))
# The connection survives and the last block is intact.
r["read_last"] = tryit(lambda: h.pread(4096, size - 4096))
r["tail_zero"] = h.pread(4096, size - 4096) == bytes(4096)
`,
    );
    expect(r).toEqual({
      read_straddle: 'EINVAL',
      read_beyond: 'EINVAL',
      write_straddle: 'ENOSPC',
      write_beyond: 'ENOSPC',
      zero_beyond: 'ENOSPC',
      trim_beyond: 'EINVAL',
      read_last: 'ok',
      tail_zero: true,
    });
  });

  it('writes on a -r export fail with EPERM; reads work', async () => {
    const r = await py(
      ro.uri,
      `
r["ro"] = h.is_read_only()
r["write"] = tryit(lambda: h.pwrite(b"x" * 512, 0))
r["zero"] = tryit(lambda: h.zero(4096, 0))
r["trim"] = tryit(lambda: h.trim(4096, 0))
r["read"] = tryit(lambda: h.pread(4096, 0))
r["flush"] = tryit(lambda: h.flush())
`,
    );
    expect(r).toEqual({ ro: true, write: 'EPERM', zero: 'EPERM', trim: 'EPERM', read: 'ok', flush: 'ok' });
  });
});

describe('nbdsh: 64-bit offsets, memory size=4T', () => {
  let srv: ServerProcess;
  beforeAll(async () => {
    srv = await startServer(['memory', 'size=4T']);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('writes above 4 GiB and at the last block of 4 TiB read back', async () => {
    // Offsets past 2^32 catch 32-bit arithmetic anywhere on the path.
    const r = await py(
      srv.uri,
      `
T = 1 << 40
r["size"] = h.get_size() == 4 * T
for off, b in ((5 << 30, 1), ((1 << 32) - 2048, 2), (3 * T + 12345, 3), (4 * T - 4096, 4)):
    h.pwrite(bytes([b]) * 4096, off)
r["ok"] = [h.pread(4096, off) == bytes([b]) * 4096 for off, b in ((5 << 30, 1), ((1 << 32) - 2048, 2), (3 * T + 12345, 3), (4 * T - 4096, 4))]
r["low"] = h.pread(4096, 0) == bytes(4096) and h.pread(4096, 1 << 30) == bytes(4096)
r["end"] = tryit(lambda: h.pread(1, 4 * T))
`,
    );
    expect(r).toEqual({ size: true, ok: [true, true, true, true], low: true, end: 'EINVAL' });
  });
});

describe('nbdsh: data path, memory size=64M', () => {
  let srv: ServerProcess;
  beforeAll(async () => {
    srv = await startServer(['memory', 'size=64M']);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('32 MiB writes and reads (the largest request) round-trip', async () => {
    const r = await py(
      srv.uri,
      `
data = os.urandom(${32 * MiB})
h.pwrite(data, ${16 * MiB})
r["same"] = h.pread(${32 * MiB}, ${16 * MiB}) == data
r["before"] = h.pread(4096, ${16 * MiB} - 4096) == bytes(4096)
`,
    );
    expect(r).toEqual({ same: true, before: true });
  });

  it('unaligned and tiny writes merge correctly with their neighbours', async () => {
    const r = await py(
      srv.uri,
      `
h.pwrite(b"A" * 10000, 1000)
h.pwrite(b"B", 4095)
h.pwrite(b"C" * 3, 8191)
exp = bytearray(12000)
exp[1000:11000] = b"A" * 10000
exp[4095] = ord("B")
exp[8191:8194] = b"CCC"
r["same"] = h.pread(12000, 0) == bytes(exp)
`,
    );
    expect(r).toEqual({ same: true });
  });

  it('FUA writes, flush, fast zero, zero without holes, cache', async () => {
    const r = await py(
      srv.uri,
      `
h.pwrite(b"\\x11" * 65536, 0, nbd.CMD_FLAG_FUA)
r["fua"] = h.pread(65536, 0) == b"\\x11" * 65536
r["flush"] = tryit(lambda: h.flush())
h.pwrite(b"\\x22" * 65536, 65536)
h.zero(65536, 65536, nbd.CMD_FLAG_NO_HOLE)
r["nohole"] = h.pread(65536, 65536) == bytes(65536)
h.pwrite(b"\\x33" * 65536, 131072)
fz = tryit(lambda: h.zero(65536, 131072, nbd.CMD_FLAG_FAST_ZERO))
# Fast zero may be refused (ENOTSUP) but must not leave the data half-zeroed.
cur = h.pread(65536, 131072)
r["fastzero"] = (fz == "ok" and cur == bytes(65536)) or (fz == "ENOTSUP" and cur == b"\\x33" * 65536)
r["fastzero_supported"] = h.can_fast_zero()
r["cache"] = tryit(lambda: h.cache(65536, 0)) if h.can_cache() else "ok"
r["df"] = h.can_df()
`,
    );
    expect(r).toMatchObject({ fua: true, flush: 'ok', nohole: true, fastzero: true, cache: 'ok', df: true });
  });

  it('256 requests in flight on one connection all complete with the right data', async () => {
    const r = await py(
      srv.uri,
      `
bufs = [bytes([i % 251 + 1]) * 65536 for i in range(256)]
for i, b in enumerate(bufs):
    h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b)), ${4 * MiB} + i * 65536)
while h.aio_in_flight() > 0:
    h.poll(-1)
h.flush()
rd = [nbd.Buffer(65536) for _ in range(256)]
for i in range(256):
    h.aio_pread(rd[i], ${4 * MiB} + i * 65536)
while h.aio_in_flight() > 0:
    h.poll(-1)
r["bad"] = [i for i in range(256) if rd[i].to_bytearray() != bufs[i]]
`,
    );
    expect(r).toEqual({ bad: [] });
  });

  it('a client that vanishes with 64 writes in flight does not disturb the server', async () => {
    // os._exit skips every cleanup: the socket just closes under the server.
    await nbdshOk(
      `
import os
for i in range(64):
    h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"\\x77" * 65536)), ${48 * MiB} + i * 65536)
h.poll(0)
os._exit(0)
`,
      srv.uri,
    );
    const r = await py(
      srv.uri,
      `
h.pwrite(b"\\x78" * 4096, 0)
r["alive"] = h.pread(4096, 0) == b"\\x78" * 4096
`,
    );
    expect(r).toEqual({ alive: true });
  });

  it('NBD_CMD_DISC after queued writes: the server finishes them before closing', async () => {
    // The spec: on NBD_CMD_DISC the server MUST handle all outstanding requests.
    await nbdshOk(
      `
for i in range(64):
    h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(bytes([i + 1]) * 65536)), ${52 * MiB} + i * 65536)
h.shutdown()
`,
      srv.uri,
    );
    const r = await py(
      srv.uri,
      `
r["bad"] = [i for i in range(64) if h.pread(65536, ${52 * MiB} + i * 65536) != bytes([i + 1]) * 65536]
`,
    );
    expect(r).toEqual({ bad: [] });
  });

  it('structured replies: a read of a hole and of data', async () => {
    const r = await py(
      srv.uri,
      `
r["structured"] = h.get_structured_replies_negotiated()
h.trim(${MiB}, ${40 * MiB})
r["hole"] = h.pread(${MiB}, ${40 * MiB}) == bytes(${MiB})
`,
    );
    expect(r).toEqual({ structured: true, hole: true });
  });
});
