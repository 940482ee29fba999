/** The filter stack: order, normalized next, per-connection handles, pass-through, failures. */
import { describe, expect, it } from 'vitest';
import { ExtentType, Flag, NbdError, defineFilter, type Filter, type Next, type Plugin } from '@nbdts/plugin-api';
import { openStack } from '../src/index.ts';
import { memPlugin } from './mem-plugin.ts';

type AnyFilter = Filter<unknown, unknown>;

/** A filter that records its reads, and otherwise changes nothing. */
function tag(name: string, calls: string[]): AnyFilter {
  return defineFilter({
    name,
    pread(next, _h, buf, offset, flags) {
      calls.push(name);
      return next.read(buf.length, offset, flags);
    },
  }) as AnyFilter;
}

describe('filter stack', () => {
  it('stacks filters with filters[0] outermost; what a filter leaves out passes through', async () => {
    const calls: string[] = [];
    const { plugin } = memPlugin({ size: 1 << 20 });
    const half = defineFilter({
      name: 'half',
      getSize: async (next: Next) => (await next.getSize()) / 2,
    }) as AnyFilter;
    const s = await openStack({ plugin, filters: [tag('outer', calls), tag('inner', calls), half] });
    expect(s.caps.size).toBe(1 << 19);
    expect(s.caps.canTrim).toBe(true); // trim passes through
    await s.pread(Buffer.alloc(16), 0, 0);
    expect(calls).toEqual(['outer', 'inner']);
    await s.close();
  });

  it('a filter that wraps only pread sees every read, whether the plugin implements read or pread', async () => {
    for (const zeroCopy of [false, true]) {
      const { plugin, mem } = memPlugin({ size: 1 << 20, zeroCopy });
      mem.write(Buffer.from('hello'), 4096);
      const seen: number[] = [];
      const upper = defineFilter({
        name: 'upper',
        async pread(next, _h, buf, offset, flags) {
          seen.push(offset);
          await next.pread(buf, offset, flags); // always fills buf, even over a plugin's read
          for (let i = 0; i < buf.length; i++) if (buf[i]! >= 97 && buf[i]! <= 122) buf[i]! -= 32;
        },
      }) as AnyFilter;
      const s = await openStack({ plugin, filters: [upper] });
      const out = Buffer.alloc(5);
      await s.pread(out, 4096, 0);
      expect(out.toString()).toBe('HELLO');
      // The engine's own read path (read/readInto) goes through the filter too.
      const viaRead = await s.read(5, 4096, 0);
      expect(Buffer.concat(Buffer.isBuffer(viaRead) ? [viaRead] : [...viaRead]).toString()).toBe('HELLO');
      expect(seen).toEqual([4096, 4096]);
      await s.close();
    }
  });

  it('gives filters a normalized next: every callback present, defaults applied', async () => {
    const p: Plugin<unknown, unknown> = {
      name: 'bare',
      open: () => ({}),
      getSize: () => 8192,
      pread: (_h, b) => {
        b.fill(7);
      },
      pwrite: () => {},
    };
    let n: Next | undefined;
    const probe = defineFilter({
      name: 'probe',
      prepare(next) {
        n = next;
      },
    }) as AnyFilter;
    const s = await openStack({ plugin: p, filters: [probe] });
    expect(n).toBeDefined();
    const next = n!;
    expect(await next.canWrite()).toBe(true);
    expect(await next.canZero()).toBe('emulate');
    expect(await next.canFua()).toBe('none');
    expect(await next.canCache()).toBe('none');
    expect(await next.canExtents()).toBe(false);
    expect(await next.extents(8192, 0, 0)).toEqual([{ offset: 0, length: 8192, type: 0 }]);
    await next.zero(4096, 0, 0); // emulated with writes
    expect(() => next.zero(4096, 0, Flag.FAST_ZERO)).toThrow(expect.objectContaining({ errno: 'ENOTSUP' }));
    expect(() => next.flush(0)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(() => next.trim(10, 0, 0)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    await s.close();
  });

  it('zero emulated by a filter goes through that filter’s pwrite', async () => {
    const { plugin, mem } = memPlugin({ size: 65536 });
    const writes: number[] = [];
    const noZero = defineFilter({
      name: 'nozero',
      canZero: () => 'emulate' as const,
      pwrite(next, _h, buf, offset, flags) {
        writes.push(buf.length);
        return next.pwrite(buf, offset, flags);
      },
    }) as AnyFilter;
    mem.write(Buffer.alloc(4096, 1), 0);
    const s = await openStack({ plugin, filters: [noZero] });
    expect(s.caps.zero).toBe('emulate');
    expect(s.caps.canFastZero).toBe(true);
    expect(() => s.zero(4096, 0, Flag.FAST_ZERO)).toThrow(expect.objectContaining({ errno: 'ENOTSUP' }));
    await s.zero(4096, 0, Flag.MAY_TRIM);
    expect(writes).toEqual([4096]);
    const b = Buffer.alloc(4096, 9);
    mem.readInto(b, 0);
    expect(b.equals(Buffer.alloc(4096))).toBe(true);
    await s.close();
  });

  it('FUA emulated by a filter becomes a flush through that filter', async () => {
    const { plugin } = memPlugin({ size: 65536 });
    const seen: string[] = [];
    const f = defineFilter({
      name: 'fua-emulate',
      canFua: () => 'emulate' as const,
      pwrite(next, _h, buf, offset, flags) {
        seen.push(`write fua=${(flags & Flag.FUA) !== 0}`);
        return next.pwrite(buf, offset, flags);
      },
      flush(next, _h, flags) {
        seen.push('flush');
        return next.flush(flags);
      },
    }) as AnyFilter;
    const s = await openStack({ plugin, filters: [f] });
    await s.pwrite(Buffer.alloc(512), 0, Flag.FUA);
    expect(seen).toEqual(['write fua=false', 'flush']);
    await s.close();
  });

  it('opens, prepares, finalizes and closes each connection’s layers in nbdkit’s order', async () => {
    const events: string[] = [];
    const { plugin } = memPlugin({
      size: 4096,
      onOpen: (n) => events.push(`plugin open ${n}`),
      onClose: () => events.push('plugin close'),
    });
    const layer = (name: string): AnyFilter =>
      defineFilter({
        name,
        async open(next, exportName, readonly) {
          events.push(`${name} open`);
          await next(exportName, readonly);
          return { name };
        },
        prepare(_n, h) {
          events.push(`${name} prepare ${(h as { name: string }).name}`);
        },
        finalize(_n, h) {
          events.push(`${name} finalize ${(h as { name: string }).name}`);
        },
        close(h) {
          events.push(`${name} close ${(h as { name: string }).name}`);
        },
      }) as AnyFilter;
    const s = await openStack({ plugin, filters: [layer('a'), layer('b')] });
    await s.close();
    expect(events).toEqual([
      'a open',
      'b open',
      'plugin open ',
      'b prepare b',
      'a prepare a',
      'a finalize a',
      'b finalize b',
      'a close a',
      'b close b',
      'plugin close',
    ]);
  });

  it('keeps one handle per connection', async () => {
    const { plugin } = memPlugin({ size: 4096 });
    let n = 0;
    const counter = defineFilter({
      name: 'counter',
      async open(next, exportName, readonly) {
        await next(exportName, readonly);
        return { id: ++n, reads: 0 };
      },
      pread(next, h, buf, offset, flags) {
        (h as { reads: number }).reads++;
        return next.read(buf.length, offset, flags);
      },
      exportDescription: (_next, h) => `connection ${(h as { id: number }).id}`,
    }) as AnyFilter;
    const a = await openStack({ plugin, filters: [counter] });
    const b = await openStack({ plugin, filters: [counter] });
    expect([await a.exportDescription(), await b.exportDescription()]).toEqual(['connection 1', 'connection 2']);
    await a.close();
    await b.close();
  });

  it('lets a filter open the layer below with another export name, or read-only', async () => {
    const names: string[] = [];
    const { plugin } = memPlugin({ size: 4096, exports: ['', 'disk2'], onOpen: (name) => names.push(name) });
    const rename = defineFilter({
      name: 'rename',
      open: (next, _name, readonly) => next('disk2', readonly),
    }) as AnyFilter;
    const ro = defineFilter({ name: 'ro', open: (next, name) => next(name, true) }) as AnyFilter;
    const s = await openStack({ plugin, filters: [rename, ro] }, { exportName: 'anything' });
    expect(names).toEqual(['disk2']);
    expect(s.caps.canWrite).toBe(false);
    await s.close();
  });

  it('refuses a filter whose open does not open the layer below, and closes what was opened when one fails', async () => {
    const { plugin } = memPlugin({ size: 4096 });
    const lazy = defineFilter({ name: 'lazy', open: () => ({}) }) as AnyFilter;
    await expect(openStack({ plugin, filters: [lazy] })).rejects.toThrow(/lazy: open did not open the layer below/);
    let closes = 0;
    const { plugin: counted } = memPlugin({ size: 4096, onClose: () => closes++ });
    const failing = defineFilter({
      name: 'failing',
      async open(next, name, readonly) {
        await next(name, readonly);
        throw new NbdError('EPERM', 'not this one');
      },
    }) as AnyFilter;
    await expect(openStack({ plugin: counted, filters: [failing] })).rejects.toThrow('not this one');
    expect(closes).toBe(1);
  });

  it('lets a filter open further instances of the layers below, and close them (as nbdkit_next_context_open)', async () => {
    const opens: string[] = [];
    let closes = 0;
    const { plugin, mem } = memPlugin({ size: 8192, onOpen: (n) => opens.push(n), onClose: () => closes++ });
    mem.write(Buffer.from('spare'), 0);
    interface H {
      spare?: import('@nbdts/plugin-api').OwnedNext;
    }
    const reopen = defineFilter({
      name: 'reopen',
      async open(next, name, readonly) {
        await next(name, readonly);
        const h: H = {};
        h.spare = await next.openAnother(name, true); // later, or right away
        return h;
      },
      pread: (_next, h, buf, offset, flags) => (h as H).spare!.read(buf.length, offset, flags),
      async close(h) {
        await (h as H).spare!.close();
      },
    }) as AnyFilter;
    const s = await openStack({ plugin, filters: [reopen] });
    expect(opens).toEqual(['', '']);
    const b = Buffer.alloc(5);
    await s.pread(b, 0, 0);
    expect(b.toString()).toBe('spare');
    await s.close();
    expect(closes).toBe(2);
  });

  it('routes export listing and the default export through filters', async () => {
    const { plugin } = memPlugin({ size: 4096, exports: ['', 'a', 'b'] });
    const hide = defineFilter({
      name: 'hide',
      listExports: async (next, ro) => (await next.listExports(ro)).filter((e) => e.name !== 'b'),
      defaultExport: () => 'a',
    }) as AnyFilter;
    const { Backend } = await import('../src/backend.ts');
    const b = new Backend(plugin, [hide], false, 1 << 20, () => {});
    expect((await b.listExports()).map((e) => e.name)).toEqual(['', 'a']);
    expect(await b.defaultExport()).toBe('a');
  });

  it('lets a filter that changes nothing stay out of the data path', async () => {
    const { plugin } = memPlugin({ size: 1 << 20 });
    const caps = defineFilter({ name: 'caps-only', canMultiConn: () => false, isRotational: () => true }) as AnyFilter;
    const s = await openStack({ plugin, filters: [caps] });
    expect(s.caps).toMatchObject({ canMultiConn: false, rotational: true, canTrim: true, zero: 'native' });
    await s.pwrite(Buffer.alloc(65536, 1), 0, Flag.FUA);
    await s.trim(65536, 0, 0);
    const ext = await s.extents(1 << 20, 0, 0);
    expect(ext[0]).toMatchObject({ offset: 0, type: ExtentType.SPARSE });
    await s.close();
  });

  it('keeps class-based plugins working (methods keep their this)', async () => {
    class P {
      name = 'cls';
      #data = Buffer.alloc(64, 7);
      open(): object {
        return {};
      }
      getSize(): number {
        return this.#data.length;
      }
      pread(_h: unknown, buf: Buffer, off: number): void {
        this.#data.copy(buf, 0, off, off + buf.length);
      }
    }
    const s = await openStack({
      plugin: new P() as unknown as Plugin<unknown, unknown>,
      filters: [defineFilter({ name: 'noop' }) as AnyFilter],
    });
    const b = Buffer.alloc(8);
    await s.pread(b, 0, 0);
    expect(b.equals(Buffer.alloc(8, 7))).toBe(true);
  });
});
