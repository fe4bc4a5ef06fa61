/**
 * The WebSocket services of `serve --listen ws://…`: the addresses checked (a non-loopback one
 * needs --allow-remote, and is warned about), the certificate read for wss://, the token read
 * or generated (its path, never the token, printed on stderr), each service started.
 */
import { readFileSync } from 'node:fs';
import { InvalidConfigError } from '../../../protocol/errors';
import type { ServiceOptions } from '../service/service';
import { generateTokenFile, readTokenFile, type TokenSource } from './access';
import { isLoopbackHost, parseWebSocketAddress, type WebSocketAddress } from './address';
import { WebSocketService } from './service';

export interface WebSocketSettings {
  readonly listens: readonly string[];
  readonly tlsCertPath: string | undefined;
  readonly tlsKeyPath: string | undefined;
  readonly tokenFile: string | undefined;
  readonly allowedOrigins: readonly string[];
  readonly allowRemote: boolean;
  readonly wsPingIntervalMs: number;
}

export interface StartedWebSockets {
  readonly services: readonly WebSocketService[];
  /** Removes a generated token file. */
  readonly dispose: () => void;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InvalidConfigError(`${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function checkedAddresses(settings: WebSocketSettings, warn: (text: string) => void): WebSocketAddress[] {
  const addresses = settings.listens.map(parseWebSocketAddress);
  for (const address of addresses) {
    if (isLoopbackHost(address.host)) continue;
    if (!settings.allowRemote) {
      throw new InvalidConfigError(`--listen on ${address.host} would accept connections from other machines: add --allow-remote to mean it, or bind 127.0.0.1`);
    }
    warn(`WebSocket service on ${address.host}:${address.port} is reachable from other machines${address.secure ? '' : ' over plain ws:// (the token travels unencrypted; prefer wss://)'}`);
  }
  if (addresses.some((a) => a.secure) && (settings.tlsCertPath === undefined || settings.tlsKeyPath === undefined)) {
    throw new InvalidConfigError('wss:// needs --tls-cert and --tls-key');
  }
  return addresses;
}

/** Starts one service per address; on failure, those already started are stopped. `say` prints to the user (stderr). */
export async function startWebSockets(settings: WebSocketSettings, options: ServiceOptions, say: (text: string) => void): Promise<StartedWebSockets> {
  const addresses = checkedAddresses(settings, (text) => options.log.warn(text));
  const tls = addresses.some((a) => a.secure)
    ? { cert: readPem(settings.tlsCertPath!, '--tls-cert'), key: readPem(settings.tlsKeyPath!, '--tls-key') }
    : undefined;
  const token: TokenSource = settings.tokenFile !== undefined ? readTokenFile(settings.tokenFile) : generateTokenFile();
  const services: WebSocketService[] = [];
  try {
    for (const address of addresses) {
      const service = new WebSocketService({ ...options, address, tls: address.secure ? tls : undefined, token: token.token, allowedOrigins: settings.allowedOrigins, pingIntervalMs: settings.wsPingIntervalMs });
      say(`layerpipe serve: listening on ${await service.start()}`);
      services.push(service);
    }
  } catch (err) {
    await Promise.all(services.map((s) => s.stop()));
    token.dispose();
    throw new InvalidConfigError(`cannot listen: ${(err as Error).message}`, { cause: err });
  }
  say(`layerpipe serve: WebSocket bearer token in ${token.path}`);
  return { services, dispose: () => token.dispose() };
}
