/**
 * `--listen ws://HOST:PORT` and `wss://HOST:PORT`. HOST defaults to 127.0.0.1 (`ws://:PORT`);
 * a non-loopback HOST is refused unless remote clients were allowed explicitly (--allow-remote).
 */
import { isIP } from 'node:net';
import { InvalidConfigError } from '../../../protocol/errors';

export interface WebSocketAddress {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
}

export const DEFAULT_WS_HOST = '127.0.0.1';

export function isWebSocketListen(value: string): boolean {
  return value.startsWith('ws://') || value.startsWith('wss://');
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export function parseWebSocketAddress(value: string): WebSocketAddress {
  const match = /^(wss?):\/\/(\[[0-9A-Fa-f:.]+\]|[^/:[\]]*):(\d{1,5})\/?$/.exec(value);
  if (match === null) throw new InvalidConfigError(`--listen ${JSON.stringify(value)}: expected ws://HOST:PORT or wss://HOST:PORT (HOST may be empty for ${DEFAULT_WS_HOST})`);
  const port = Number(match[3]);
  if (port > 65535) throw new InvalidConfigError(`--listen ${JSON.stringify(value)}: port ${port} is out of range`);
  const rawHost = match[2]!;
  const host = rawHost === '' ? DEFAULT_WS_HOST : rawHost.replace(/^\[(.*)\]$/, '$1');
  return { secure: match[1] === 'wss', host, port };
}

/** How an address is written back (IPv6 in brackets). */
export function formatWebSocketAddress(secure: boolean, host: string, port: number): string {
  return `${secure ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
