import { describe, expect, it, vi } from 'vitest';
import { watchParent, watchSignals } from '../src/index.ts';

describe('watchSignals', () => {
  it('resolves on the first signal and forces on the second', async () => {
    const listeners = process.listenerCount('SIGTERM');
    const force = vi.fn();
    const w = watchSignals(force);
    try {
      process.emit('SIGTERM', 'SIGTERM');
      expect(await w.stopped).toBe('SIGTERM');
      expect(force).not.toHaveBeenCalled();
      process.emit('SIGINT', 'SIGINT');
      expect(force).toHaveBeenCalledWith('SIGINT');
    } finally {
      w.dispose();
    }
    expect(process.listenerCount('SIGTERM')).toBe(listeners);
  });

  it('stop() is a first stop too', async () => {
    const force = vi.fn();
    const w = watchSignals(force);
    w.stop('parent exited');
    expect(await w.stopped).toBe('parent exited');
    process.emit('SIGTERM', 'SIGTERM');
    expect(force).toHaveBeenCalledOnce();
    w.dispose();
  });
});

describe('watchParent', () => {
  it('does not fire while the parent lives', async () => {
    const gone = vi.fn();
    const stop = watchParent(gone, 10);
    await new Promise((r) => setTimeout(r, 50));
    stop();
    expect(gone).not.toHaveBeenCalled();
  });
});
