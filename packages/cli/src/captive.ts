/**
 * NBD URIs and --run (captive mode, as nbdkit-captive(1) describes): the
 * command runs via `sh -c` with $uri, $nbd, $port, $unixsocket and
 * $exportname in its environment, so the shell expands them in the command.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants } from 'node:os';

export type Endpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host?: string; port: number };

/** Percent-encode what would break the URI, leaving '/' and ordinary path characters readable. */
function encode(text: string): string {
  return encodeURIComponent(text).replace(/%2F/gi, '/');
}

/** The NBD URI (the form documented by the NBD project) for an endpoint and export name. */
export function nbdUri(ep: Endpoint, exportname = ''): string {
  if (ep.kind === 'unix') return `nbd+unix:///${encode(exportname)}?socket=${encode(ep.path)}`;
  let host =
    ep.host === undefined || ep.host === '' || ep.host === '0.0.0.0' || ep.host === '::' ? 'localhost' : ep.host;
  if (host.includes(':')) host = `[${host}]`;
  return `nbd://${host}:${ep.port}${exportname ? `/${encode(exportname)}` : ''}`;
}

/** The variables --run's command sees. */
export function captiveEnv(ep: Endpoint, exportname: string): Record<string, string> {
  const uri = nbdUri(ep, exportname);
  return {
    uri,
    nbd: uri,
    port: ep.kind === 'tcp' ? String(ep.port) : '',
    unixsocket: ep.kind === 'unix' ? ep.path : '',
    exportname,
  };
}

/** A private socket path in a fresh directory; call cleanup() at exit. */
export function privateSocket(): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'nbdts-'));
  return { path: join(dir, 'socket'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunningCommand {
  child: ChildProcess;
  /** Exit status as a shell reports it: the code, or 128 + signal number. */
  exited: Promise<number>;
}

/** Start `sh -c CMD` with the captive variables; stdio is inherited. */
export function runCaptive(command: string, vars: Record<string, string>): RunningCommand {
  const child = spawn('/bin/sh', ['-c', command], { stdio: 'inherit', env: { ...process.env, ...vars } });
  const exited = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => {
      if (code !== null) resolve(code);
      else resolve(128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
  return { child, exited };
}
