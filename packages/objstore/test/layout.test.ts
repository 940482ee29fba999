import { describe, expect, it } from 'vitest';
import { ObjectsLayout, SingleObjectLayout, paddedKeys } from '../src/index.ts';

describe('paddedKeys', () => {
  it('formats Swift and S3 keys', () => {
    expect(paddedKeys('disk.part/', 10, 8).keyOf(42)).toBe('disk.part/00000042');
    expect(paddedKeys('vol/', 16, 16).keyOf(255)).toBe('vol/00000000000000ff');
  });

  it('parses its own keys and rejects others', () => {
    const k = paddedKeys('disk.part/', 10, 8);
    expect(k.indexOf('disk.part/00000042')).toBe(42);
    expect(k.indexOf('disk.part/123456789')).toBe(123456789);
    expect(k.indexOf('disk.part/0000042')).toBeNull();
    expect(k.indexOf('disk.part/00000042.tmp')).toBeNull();
    expect(k.indexOf('disk.part/012345678')).toBeNull();
    expect(k.indexOf('other/00000042')).toBeNull();
    expect(k.indexOf('disk.lock')).toBeNull();
    const h = paddedKeys('vol/', 16, 16);
    expect(h.indexOf('vol/00000000000000ff')).toBe(255);
    expect(h.indexOf('vol/00000000000000FF')).toBeNull();
  });
});

describe('ObjectsLayout', () => {
  const layout = new ObjectsLayout({ size: 2500, objectSize: 1024, keys: paddedKeys('p/', 10, 4) });

  it('counts chunks and shortens the last one', () => {
    expect(layout.chunks).toBe(3);
    expect([0, 1, 2].map((i) => layout.chunkLength(i))).toEqual([1024, 1024, 452]);
    expect(layout.locate(2)).toEqual({ key: 'p/0002' });
  });

  it('accepts a full-size or exact last object, and only exact others', () => {
    expect(layout.acceptsLength(0, 1024)).toBe(true);
    expect(layout.acceptsLength(0, 1023)).toBe(false);
    expect(layout.acceptsLength(2, 452)).toBe(true);
    expect(layout.acceptsLength(2, 1024)).toBe(true);
    expect(layout.acceptsLength(2, 451)).toBe(false);
  });

  it('ignores listed keys beyond the device', () => {
    expect(layout.indexOf('p/0002')).toBe(2);
    expect(layout.indexOf('p/0003')).toBeNull();
  });

  it('refuses tiny objects', () => {
    expect(() => new ObjectsLayout({ size: 4096, objectSize: 100, keys: paddedKeys('p/', 10, 4) })).toThrow(
      /at least 512/,
    );
  });
});

describe('SingleObjectLayout', () => {
  it('maps chunks to ranges of one key', () => {
    const l = new SingleObjectLayout({ key: 'fedora.iso', size: 3000, chunkSize: 1024 });
    expect(l.readOnly).toBe(true);
    expect(l.listPrefix).toBeUndefined();
    expect(l.locate(1)).toEqual({ key: 'fedora.iso', range: { offset: 1024, length: 1024 } });
    expect(l.locate(2)).toEqual({ key: 'fedora.iso', range: { offset: 2048, length: 952 } });
    expect(l.acceptsLength(2, 1024)).toBe(false);
  });
});
