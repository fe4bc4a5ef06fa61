/**
 * A running `layerpipe serve --listen` for tests: the real binary in its own process, clients
 * connected to its socket (0.2.x through the TypeScript client, 1.0 through a few raw
 * JSON-RPC packets), its open descriptors counted from /proc, its exit observed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { ImageProxy } from '../../clients/typescript';
import { SeqpacketChannel } from '../../clients/typescript/seqpacket-channel';
import { native } from '../../protocol/seqpacket/native';
import { SeqpacketSocket, type Packet } from '../../protocol/seqpacket/socket';
import { LAYERPIPE } from './jsonrpc-client';
import { emptyAuthFilePath } from './registry-images';

export interface ServiceExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface StartServiceOptions {
  /** The socket path (`--listen unix:PATH`); omit with `listenArgs` for other forms. */
  readonly socketPath: string;
  /** Replaces `--listen unix:PATH` (e.g. `--listen unix:`, or nothing for systemd activation). */
  readonly listenArgs?: readonly string[];
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Passed as the child's fd 3, with LISTEN_FDS=1 and LISTEN_PID set to the child's own pid. */
  readonly activationFd?: number;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function until(what: string, test: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await sleep(20);
  }
}

export class RunningService {
  readonly exited: Promise<ServiceExit>;
  private readonly stderrChunks: Buffer[] = [];

  constructor(readonly child: ChildProcess, readonly socketPath: string) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.stderr?.on('data', (c: Buffer) => this.stderrChunks.push(c));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderr(): string {
    return Buffer.concat(this.stderrChunks).toString('utf8');
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Open descriptors of the service process. */
  openFds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** A connected socket (retried while the backlog is full). */
  async connectFd(): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      try {
        return native.connectSeqpacket(this.socketPath);
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAGAIN' || attempt > 100) throw err;
        await sleep(10);
      }
    }
  }

  /** An initialized 0.2.x client on a new connection. */
  async connect(): Promise<ImageProxy> {
    const proxy = ImageProxy.connect(new SeqpacketChannel(await this.connectFd(), { peerName: 'layerpipe service' }));
    await proxy.initialize();
    return proxy;
  }

  /** A raw 1.0 connection. */
  async connectRpc(): Promise<RpcConnection> {
    return new RpcConnection(new SeqpacketSocket(await this.connectFd(), 4 * 1024 * 1024));
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(signal);
  }
}

/** Starts the service and waits until its socket accepts connections. */
export async function startService(opts: StartServiceOptions): Promise<RunningService> {
  const args = ['serve', ...(opts.listenArgs ?? ['--listen', `unix:${opts.socketPath}`]), '--insecure-policy', ...(opts.args ?? [])];
  const env: NodeJS.ProcessEnv = { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath(), ...opts.env };
  let child: ChildProcess;
  if (opts.activationFd === undefined) {
    child = spawn(LAYERPIPE, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  } else {
    // As systemd does: LISTEN_PID names the service process itself, which `exec` keeps.
    child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', LAYERPIPE, ...args], {
      stdio: ['ignore', 'ignore', 'pipe', opts.activationFd],
      env,
    });
  }
  const service = new RunningService(child, opts.socketPath);
  try {
    await until(`the service listens on ${opts.socketPath}`, () => {
      if (!service.running) throw new Error(`the service exited early: ${service.stderr}`);
      if (!existsSync(opts.socketPath)) return false;
      try {
        native.close(native.connectSeqpacket(opts.socketPath));
        return true;
      } catch {
        return false;
      }
    }, 30_000); // a loaded machine can take seconds to start node and load the server
  } catch (err) {
    service.kill();
    throw err;
  }
  return service;
}

/** Stops the service with `signal`; its exit and how long it took. */
export async function stopService(service: RunningService, signal: NodeJS.Signals = 'SIGTERM'): Promise<ServiceExit & { ms: number }> {
  const started = Date.now();
  service.kill(signal);
  const exit = await service.exited;
  return { ...exit, ms: Date.now() - started };
}

export interface RpcAnswer {
  readonly result?: unknown;
  readonly error?: { code: number; message: string; data?: { error_code: string } };
  readonly fds: number[];
}

/** Protocol 1.0 over a connected SEQPACKET socket: one JSON-RPC message per packet, nothing more. */
export class RpcConnection {
  private nextId = 1;
  private readonly waiting = new Map<number, (answer: RpcAnswer) => void>();

  constructor(private readonly socket: SeqpacketSocket) {
    socket.on('packet', (packet: Packet) => {
      const message = JSON.parse(packet.data.toString('utf8')) as { id?: number; result?: unknown; error?: RpcAnswer['error']; method?: string };
      const waiter = message.method === undefined && message.id !== undefined ? this.waiting.get(message.id) : undefined;
      if (waiter === undefined) {
        for (const fd of packet.fds) native.close(fd);
        return;
      }
      this.waiting.delete(message.id!);
      waiter({ result: message.result, error: message.error, fds: packet.fds });
    });
    socket.on('error', () => undefined);
  }

  async call(method: string, params: unknown): Promise<RpcAnswer> {
    const id = this.nextId++;
    const answer = new Promise<RpcAnswer>((resolve) => this.waiting.set(id, resolve));
    await this.socket.send(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, method, params })));
    return answer;
  }

  async request<T>(method: string, params: unknown): Promise<T> {
    const answer = await this.call(method, params);
    if (answer.error !== undefined) throw new Error(`${method}: ${answer.error.message}`);
    return answer.result as T;
  }

  close(): void {
    this.socket.close();
  }
}
