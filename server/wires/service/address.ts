/**
 * Where the service listens: `--listen unix:PATH`, `--listen unix:` for the default path
 * $XDG_RUNTIME_DIR/layerpipe/layerpipe.sock, or a socket systemd passes (LISTEN_FDS), which
 * takes precedence over --listen as socket-activated daemons do.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidConfigError } from '../../../protocol/errors';

/** sd_listen_fds(3): the first passed descriptor. */
export const SD_LISTEN_FDS_START = 3;
export const DEFAULT_SOCKET_NAME = path.join('layerpipe', 'layerpipe.sock');

export type ListenTarget = { readonly kind: 'path'; readonly path: string } | { readonly kind: 'fd'; readonly fd: number; readonly name: string };

/** The socket path a `--listen` value names; `unix:` alone is the default path under $XDG_RUNTIME_DIR. */
export function parseListenAddress(value: string, env: NodeJS.ProcessEnv): string {
  if (!value.startsWith('unix:')) throw new InvalidConfigError(`--listen ${JSON.stringify(value)}: expected unix:PATH (or unix: for $XDG_RUNTIME_DIR/${DEFAULT_SOCKET_NAME})`);
  const given = value.slice('unix:'.length);
  if (given !== '') return path.resolve(given);
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime === undefined || !path.isAbsolute(runtime)) {
    throw new InvalidConfigError('--listen unix: needs $XDG_RUNTIME_DIR (an absolute path) for the default socket; give one with --listen unix:PATH');
  }
  return path.join(runtime, DEFAULT_SOCKET_NAME);
}

/** Makes the default socket's directory (0700) when it is missing; a given path's directory must exist. */
export function prepareSocketDirectory(socketPath: string, env: NodeJS.ProcessEnv): void {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime === undefined || socketPath !== path.join(runtime, DEFAULT_SOCKET_NAME)) return;
  mkdirSync(path.dirname(socketPath), { mode: 0o700, recursive: true });
  if (!statSync(path.dirname(socketPath)).isDirectory()) throw new InvalidConfigError(`${path.dirname(socketPath)} is not a directory`);
}

/**
 * The socket systemd passed to this very process (LISTEN_PID is ours and LISTEN_FDS is 1), or
 * undefined. The variables are removed from the environment either way, so no child (a
 * credential helper) believes the socket is meant for it.
 */
export function takeSystemdSocket(env: NodeJS.ProcessEnv, pid: number): { fd: number; name: string } | undefined {
  const listenPid = env.LISTEN_PID;
  const listenFds = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenPid === undefined || listenFds === undefined || listenPid !== String(pid)) return undefined;
  if (!/^\d+$/.test(listenFds) || Number(listenFds) === 0) return undefined;
  if (Number(listenFds) !== 1) throw new InvalidConfigError(`systemd passed ${listenFds} sockets (LISTEN_FDS); the service serves exactly one`);
  const label = names !== undefined && names !== '' ? ` "${names}"` : '';
  return { fd: SD_LISTEN_FDS_START, name: `systemd socket${label} (fd ${SD_LISTEN_FDS_START})` };
}

/** Activation first, then --listen. */
export function listenTarget(listen: string | undefined, env: NodeJS.ProcessEnv, pid: number): ListenTarget | undefined {
  const activated = takeSystemdSocket(env, pid);
  if (activated !== undefined) return { kind: 'fd', ...activated };
  return listen === undefined ? undefined : { kind: 'path', path: parseListenAddress(listen, env) };
}
