/**
 * `layerpipe serve --listen ws://127.0.0.1:0` for tests: the real binary in its own process,
 * its bound address and token path read from what it prints, clients connected through the
 * browser client (clients/typescript/browser) on the `ws` package's WebSocket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { WebSocketImageProxy, type WebSocketLike } from '../../clients/typescript/browser/ws-client';
import { LAYERPIPE } from './jsonrpc-client';
import { emptyAuthFilePath } from './registry-images';
import { until } from './service';

export interface WsService {
  readonly child: ChildProcess;
  readonly url: string;
  readonly token: string;
  readonly tokenPath: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  /** SIGTERM, then the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface WsServiceOptions {
  /** Extra flags (e.g. --allow-origin, a second --listen). */
  readonly args?: readonly string[];
  /** Write this token to a file and pass --token-file; default: the service generates one. */
  readonly token?: string;
  readonly listen?: string;
  readonly env?: Readonly<Record<string, string>>;
}

export async function startWsService(options: WsServiceOptions = {}): Promise<WsService> {
  const args = ['serve', '--listen', options.listen ?? 'ws://127.0.0.1:0', '--insecure-policy', ...(options.args ?? [])];
  if (options.token !== undefined) {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'lp-ws-token-')), 'token');
    writeFileSync(file, `${options.token}\n`, { mode: 0o600 });
    args.push('--token-file', file);
  }
  const child = spawn(LAYERPIPE, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath(), ...options.env } });
  const chunks: Buffer[] = [];
  child.stderr!.on('data', (c: Buffer) => chunks.push(c));
  const stderr = (): string => Buffer.concat(chunks).toString('utf8');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  await until('the service prints its token path', () => /bearer token in (\S+)/.test(stderr()) || child.exitCode !== null, 30_000);
  const tokenPath = /bearer token in (\S+)/.exec(stderr())?.[1];
  const url = /listening on (wss?:\/\/\S+)/.exec(stderr())?.[1];
  if (tokenPath === undefined || url === undefined) throw new Error(`serve did not start: ${stderr()}`);
  const token = readFileSync(tokenPath, 'utf8').trim();
  return {
    child, url, token, tokenPath, exited, stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** The browser client on Node, through the `ws` package. */
export function connectWs(service: Pick<WsService, 'url' | 'token'>, window?: number): Promise<WebSocketImageProxy> {
  return WebSocketImageProxy.connect(service.url, service.token, {
    webSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike,
    window,
  });
}

/** The status an upgrade request gets, and whether a WebSocket opened. */
export function tryUpgrade(url: string, options: { headers?: Record<string, string>; protocols?: string[]; origin?: string }): Promise<{ status: number; opened: boolean }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, options.protocols ?? [], { headers: options.headers, origin: options.origin });
    socket.on('open', () => {
      socket.close();
      resolve({ status: 101, opened: true });
    });
    socket.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, opened: false });
      res.resume();
      socket.terminate();
    });
    socket.on('error', () => resolve({ status: 0, opened: false }));
  });
}

export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}
