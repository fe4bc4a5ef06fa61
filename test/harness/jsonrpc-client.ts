/**
 * A deliberately small protocol 1.0 client for tests, written against the wire rather than
 * against the server's code: it spawns the real bin/layerpipe (on a SOCK_SEQPACKET socketpair,
 * or `serve --stdio`), sends raw JSON-RPC messages (or raw bytes, for the bad-input cases), and
 * keeps every message the server sends, so tests can check order and content exactly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Readable } from 'node:stream';
import { native } from '../../protocol/seqpacket/native';
import { SeqpacketSocket } from '../../protocol/seqpacket/socket';

export const LAYERPIPE = path.resolve(__dirname, '..', '..', '..', 'bin', 'layerpipe');

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: { error_code: string; kind?: string };
}

/** A message from the server, with the fds that arrived on its packet (SEQPACKET only). */
export interface Received {
  readonly message: Record<string, unknown>;
  readonly fds: number[];
}

export interface Response {
  readonly id: number | string | null;
  readonly result?: unknown;
  readonly error?: RpcErrorObject;
  readonly fds: number[];
}

type Listener = (received: Received) => void;

/** A stream transfer's bytes as they arrive, before and after a test asks for them. */
interface StreamState {
  readonly chunks: Buffer[];
  ended: { error?: RpcErrorObject } | undefined;
  readable: Readable | undefined;
  /** Bytes taken by the reader whose credit is not yet granted. */
  owed: number;
}

/** Framing: how bytes go out and whole messages come back. */
interface Framing {
  send(data: Buffer): Promise<void>;
  /** Stops and restarts reading what the server sends (it then blocks on its own writes). */
  pause(): void;
  resume(): void;
  onMessage(handler: (data: Buffer, fds: number[]) => void): void;
  onEnd(handler: () => void): void;
  close(): void;
}

function seqpacketFraming(socket: SeqpacketSocket): Framing {
  return {
    send: (data) => socket.send(data),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    onMessage: (handler) => socket.on('packet', (p) => handler(p.data, p.fds)),
    onEnd: (handler) => {
      socket.on('end', handler);
      socket.on('error', handler);
    },
    close: () => socket.close(),
  };
}

/** Content-Length framing on a child's stdin/stdout. */
function stdioFraming(child: ChildProcess): Framing {
  let buffered = Buffer.alloc(0);
  let handle: (data: Buffer, fds: number[]) => void = () => undefined;
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/Content-Length: (\d+)/i.exec(buffered.subarray(0, end).toString('latin1'))?.[1]);
      if (buffered.length < end + 4 + length) return;
      const body = buffered.subarray(end + 4, end + 4 + length);
      buffered = buffered.subarray(end + 4 + length);
      handle(Buffer.from(body), []);
    }
  });
  child.stdin!.on('error', () => undefined);
  return {
    send: (data) => new Promise<void>((resolve, reject) => child.stdin!.write(data, (err) => (err ? reject(err) : resolve()))),
    pause: () => child.stdout!.pause(),
    resume: () => child.stdout!.resume(),
    onMessage: (handler) => {
      handle = handler;
    },
    onEnd: (handler) => child.stdout!.on('end', handler),
    close: () => child.stdin!.end(),
  };
}

export function frame(body: Buffer | string): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([Buffer.from(`Content-Length: ${bytes.length}\r\n\r\n`), bytes]);
}

export class RpcTestClient {
  /** Every message received, in order. */
  readonly received: Received[] = [];
  readonly stderr: Buffer[] = [];
  readonly exited: Promise<number | null>;
  private readonly waiting = new Map<number | string, (r: Response) => void>();
  private readonly listeners = new Set<Listener>();
  private readonly streams = new Map<number, StreamState>();
  private nextId = 1;
  private ended = false;

  private constructor(private readonly framing: Framing, readonly child: ChildProcess, readonly kind: 'seqpacket' | 'stdio') {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stderr!.on('data', (c: Buffer) => this.stderr.push(c));
    framing.onMessage((data, fds) => this.onMessage(data, fds));
    framing.onEnd(() => {
      this.ended = true;
    });
  }

  /** bin/layerpipe experimental-image-proxy on a fresh socketpair (fd 0). */
  static spawnSeqpacket(args: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): RpcTestClient {
    const [ours, theirs] = native.seqpacketPair();
    const child = spawn(LAYERPIPE, ['experimental-image-proxy', ...args], { stdio: [theirs, 'ignore', 'pipe'], env });
    native.close(theirs);
    const socket = new SeqpacketSocket(ours, 4 * 1024 * 1024);
    return new RpcTestClient(seqpacketFraming(socket), child, 'seqpacket');
  }

  /** bin/layerpipe serve --stdio. */
  static spawnStdio(args: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): RpcTestClient {
    const child = spawn(LAYERPIPE, ['serve', '--stdio', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
    return new RpcTestClient(stdioFraming(child), child, 'stdio');
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderrText(): string {
    return Buffer.concat(this.stderr).toString('utf8');
  }

  /** Sends one message (framed for this connection). */
  sendMessage(message: unknown): Promise<void> {
    return this.sendRaw(Buffer.from(JSON.stringify(message)));
  }

  /** Sends bytes as one packet, or as one Content-Length frame on stdio. */
  sendRaw(body: Buffer): Promise<void> {
    return this.framing.send(this.kind === 'stdio' ? frame(body) : body);
  }

  /** Sends bytes exactly as given (stdio: no framing added). */
  sendBytes(bytes: Buffer): Promise<void> {
    return this.framing.send(bytes);
  }

  notify(method: string, params?: unknown): Promise<void> {
    return this.sendMessage(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });
  }

  /** Sends a request and resolves with its response (error responses included). */
  async call(method: string, params?: unknown, id: number | string = this.nextId++): Promise<Response> {
    const answer = this.response(id);
    await this.sendMessage(params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params });
    return answer;
  }

  /** The response with `id`, whenever it comes (register before sending). */
  response(id: number | string | null): Promise<Response> {
    return new Promise((resolve) => this.waiting.set(id ?? 'null', resolve));
  }

  /** The result of a request, or throws an Error carrying the error object. */
  async request<T = unknown>(method: string, params?: unknown): Promise<T> {
    const r = await this.call(method, params);
    if (r.error !== undefined) throw Object.assign(new Error(r.error.message), { rpc: r.error });
    return r.result as T;
  }

  async initialize(payloads: readonly string[] = ['fd'], extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.request('Initialize', { protocolVersion: '1.0', payloads, ...extra });
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Notifications received so far with `method`. */
  notifications(method: string): Record<string, unknown>[] {
    return this.received.filter((r) => r.message.method === method).map((r) => r.message.params as Record<string, unknown>);
  }

  get connectionEnded(): boolean {
    return this.ended;
  }

  pauseReading(): void {
    this.framing.pause();
  }

  resumeReading(): void {
    this.framing.resume();
  }

  /** Closes our end (EOF for the server). */
  close(): void {
    this.framing.close();
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  /**
   * A stream transfer's bytes as a Readable. With `credit` (the default) the client grants
   * credit for what the reader consumes, so a reader that stops reading stops the server.
   * `transfer/end` ends the stream (with or without an error: FinishTransfer tells which).
   */
  streamReadable(transfer: number, credit = true): Readable {
    const state = this.streamState(transfer);
    const grant = (): void => {
      if (!credit || state.owed === 0 || state.ended !== undefined) return;
      void this.notify('transfer/credit', { transfer, bytes: state.owed }).catch(() => undefined);
      state.owed = 0;
    };
    const readable = new Readable({ read: grant });
    state.readable = readable;
    for (const chunk of state.chunks.splice(0)) this.pushChunk(state, chunk);
    if (state.ended !== undefined) readable.push(null);
    return readable;
  }

  /** How a stream transfer ended, once it has (undefined while it runs). */
  streamEnd(transfer: number): { error?: RpcErrorObject } | undefined {
    return this.streams.get(transfer)?.ended;
  }

  /** Bytes of a stream transfer received but not yet handed to a reader. */
  streamBuffered(transfer: number): number {
    return (this.streams.get(transfer)?.chunks ?? []).reduce((n, c) => n + c.length, 0);
  }

  private streamState(transfer: number): StreamState {
    let state = this.streams.get(transfer);
    if (state === undefined) {
      state = { chunks: [], ended: undefined, readable: undefined, owed: 0 };
      this.streams.set(transfer, state);
    }
    return state;
  }

  private pushChunk(state: StreamState, chunk: Buffer): void {
    state.owed += chunk.length; // granted by the Readable's read() once the consumer takes it
    state.readable!.push(chunk);
  }

  private onStreamMessage(message: Record<string, unknown>): void {
    const params = message.params as { transfer: number; data?: string; error?: RpcErrorObject };
    const state = this.streamState(params.transfer);
    if (message.method === 'transfer/data') {
      const chunk = Buffer.from(params.data!, 'base64');
      if (state.readable === undefined) state.chunks.push(chunk);
      else this.pushChunk(state, chunk);
    } else {
      state.ended = params.error === undefined ? {} : { error: params.error };
      state.readable?.push(null);
    }
  }

  private onMessage(data: Buffer, fds: number[]): void {
    const message = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    const received = { message, fds };
    this.received.push(received);
    if (message.method === 'transfer/data' || message.method === 'transfer/end') this.onStreamMessage(message);
    if (!('method' in message)) {
      const id = (message.id ?? 'null') as number | string;
      const waiter = this.waiting.get(id);
      if (waiter !== undefined) {
        this.waiting.delete(id);
        waiter({ id: message.id as number | string | null, result: message.result, error: message.error as RpcErrorObject | undefined, fds });
      }
    }
    for (const listener of this.listeners) listener(received);
  }
}
