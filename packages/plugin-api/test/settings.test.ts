import { describe, expect, it } from 'vitest';
import { moduleSettings } from '../src/index.ts';

describe('moduleSettings', () => {
  it('keeps a value, refuses reads before it is set, and hands it to another thread’s copy', async () => {
    const a = moduleSettings<{ offset: number; hits: SharedArrayBuffer }>('offset');
    expect(a.isSet).toBe(false);
    expect(() => a.get()).toThrow('offset: used before its configuration was complete');
    expect(a.threads.share()).toBeUndefined(); // declines threads until configured
    a.set({ offset: 4096, hits: new SharedArrayBuffer(8) });
    expect(a.get().offset).toBe(4096);
    // A worker's copy of the module: a fresh holder, attached to a structured clone.
    const b = moduleSettings<{ offset: number; hits: SharedArrayBuffer }>('offset');
    await b.threads.attach(structuredClone(a.threads.share()));
    expect(b.get().offset).toBe(4096);
    Atomics.add(new BigInt64Array(b.get().hits), 0, 1n);
    expect(new BigInt64Array(a.get().hits)[0]).toBe(1n); // same memory
  });
});
