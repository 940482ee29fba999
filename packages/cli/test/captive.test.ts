import { describe, expect, it } from 'vitest';
import { activationFds, captiveEnv, nbdUri, runCaptive } from '../src/index.ts';

describe('nbdUri', () => {
  it('builds nbd+unix URIs with the export name in the path', () => {
    expect(nbdUri({ kind: 'unix', path: '/tmp/x/socket' })).toBe('nbd+unix:///?socket=/tmp/x/socket');
    expect(nbdUri({ kind: 'unix', path: '/tmp/a b/s' }, 'd/1 2')).toBe('nbd+unix:///d/1%202?socket=/tmp/a%20b/s');
  });

  it('builds nbd:// URIs, localhost for wildcard addresses, brackets for IPv6', () => {
    expect(nbdUri({ kind: 'tcp', port: 10809 })).toBe('nbd://localhost:10809');
    expect(nbdUri({ kind: 'tcp', host: '0.0.0.0', port: 1 }, 'disk')).toBe('nbd://localhost:1/disk');
    expect(nbdUri({ kind: 'tcp', host: '::1', port: 2 })).toBe('nbd://[::1]:2');
    expect(nbdUri({ kind: 'tcp', host: 'example.com', port: 3 })).toBe('nbd://example.com:3');
  });

  it('gives --run the nbdkit variables', () => {
    expect(captiveEnv({ kind: 'tcp', port: 5 }, 'e')).toEqual({
      uri: 'nbd://localhost:5/e',
      nbd: 'nbd://localhost:5/e',
      port: '5',
      unixsocket: '',
      exportname: 'e',
    });
  });
});

describe('runCaptive', () => {
  it('reports exit codes, and 128+N for a signal', async () => {
    expect(await runCaptive('exit 4', {}).exited).toBe(4);
    expect(await runCaptive('test "$uri" = x', { uri: 'x' }).exited).toBe(0);
    expect(await runCaptive('kill -TERM $$', {}).exited).toBe(128 + 15);
  });
});

describe('activationFds', () => {
  it('is only for this process', () => {
    expect(activationFds({}, 42)).toBeUndefined();
    expect(activationFds({ LISTEN_PID: '41', LISTEN_FDS: '1' }, 42)).toBeUndefined();
    expect(activationFds({ LISTEN_PID: '42', LISTEN_FDS: '2' }, 42)).toEqual([3, 4]);
    expect(activationFds({ LISTEN_PID: '42', LISTEN_FDS: '0' }, 42)).toBeUndefined();
  });
});
