/**
 * The browser client of protocol 1.0 over `layerpipe serve --listen ws://…`: WebSocket,
 * ReadableStream and Response only, no Node APIs (bundled as an ES module by
 * `npm run build:browser`, to dist/browser/layerpipe-ws.mjs). The token travels as a `bearer.TOKEN` subprotocol entry,
 * since pages cannot set headers. Any number of calls may overlap; each may be cancelled with
 * an AbortSignal ($/cancelRequest).
 *
 *   const proxy = await WebSocketImageProxy.connect('ws://127.0.0.1:8900', token);
 *   const image = await proxy.openImage('oci:/srv/layout:latest');
 *   const blob = await proxy.getBlob(image, digest, { onProgress });
 *   const { instance } = await WebAssembly.instantiateStreaming(blob.response('application/wasm'));
 *   await blob.finish();
 */
import {
  DEFAULT_STREAM_WINDOW, PROTOCOL_VERSION_1, RpcErrorCodes,
  type GetBlobParams, type InitializeResult, type Layer, type ManifestResult, type RpcError, type RpcErrorData, type TransferResult,
} from '../../../protocol/jsonrpc';
import { readDataFrame, WS_SUBPROTOCOL_1, WS_TOKEN_PROTOCOL_PREFIX } from '../../../protocol/websocket';
import { WebSocketBlobStream } from './ws-blob';

/** The part of the WebSocket API used here (the browser's, or the `ws` package's in Node). */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketFactory = (url: string, protocols: string[]) => WebSocketLike;

/** An error response (or a transfer's failure) from the proxy. */
export class ProxyError extends Error {
  override name = 'ProxyError';
  constructor(readonly code: number, message: string, readonly data: RpcErrorData | undefined) {
    super(message);
  }
}

const toError = (e: RpcError): Error => new ProxyError(e.code, e.message, e.data);

export interface ConnectOptions {
  /** Default: the global WebSocket. */
  readonly webSocket?: WebSocketFactory;
  /** In-band window to ask for. */
  readonly window?: number;
}

export interface BlobOptions {
  readonly signal?: AbortSignal;
  /** Bytes sent so far and the total, at most ten times a second. */
  readonly onProgress?: (bytes: number, total: number) => void;
}

export interface WebSocketBlob {
  readonly transfer: number;
  readonly size: number;
  readonly stream: ReadableStream<Uint8Array>;
  /** The stream as a fetch Response (for WebAssembly.instantiateStreaming, which wants application/wasm). */
  response(contentType?: string): Response;
  /** FinishTransfer: resolves when every byte was sent and verified, else rejects with the transfer's error. */
  finish(): Promise<void>;
  /** CancelTransfer: stops the transfer; the stream errors. */
  cancel(): Promise<void>;
}

interface Pending {
  /** `blob`: the stream of the transfer the result names, made before any of its data can arrive. */
  resolve(value: unknown, blob: WebSocketBlobStream | undefined): void;
  reject(err: Error): void;
  /** Transfer requests: progress reports go here from the response on. */
  readonly onProgress?: (bytes: number, total: number) => void;
}

export class WebSocketImageProxy {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, WebSocketBlobStream>();
  private readonly progress = new Map<number, (bytes: number, total: number) => void>();
  private window = DEFAULT_STREAM_WINDOW;
  private closedWith: Error | undefined;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: WebSocketLike) {
    let markClosed!: () => void;
    this.closed = new Promise((resolve) => { markClosed = resolve; });
    socket.binaryType = 'arraybuffer';
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      this.fail(new Error(`WebSocket closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`));
      markClosed();
    };
  }

  /** Opens the WebSocket with `token` and initializes protocol 1.0 with stream payloads. */
  static async connect(url: string, token: string, options: ConnectOptions = {}): Promise<WebSocketImageProxy> {
    const factory = options.webSocket ?? ((u: string, p: string[]) => new WebSocket(u, p) as unknown as WebSocketLike);
    const socket = factory(url, [WS_SUBPROTOCOL_1, `${WS_TOKEN_PROTOCOL_PREFIX}${token}`]);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      // Browsers tell nothing about a refused upgrade (401/403): only that it failed.
      socket.onerror = () => reject(new Error(`cannot open a WebSocket to ${url} (refused: wrong token or Origin, or nothing listening)`));
      socket.onclose = (event) => reject(new Error(`WebSocket to ${url} closed (${event.code}) before it opened`));
    });
    socket.onerror = null;
    const proxy = new WebSocketImageProxy(socket);
    const init = await proxy.call<InitializeResult>('Initialize', { protocolVersion: '1.0', payloads: ['stream'], window: options.window ?? DEFAULT_STREAM_WINDOW });
    if (init.protocolVersion !== PROTOCOL_VERSION_1) throw new Error(`unexpected protocol version ${init.protocolVersion}`);
    proxy.window = init.window;
    return proxy;
  }

  /** One request; aborting `signal` sends $/cancelRequest. */
  async call<R>(method: string, params: object, signal?: AbortSignal): Promise<R> {
    return (await this.request(method, params, signal)).result as R;
  }

  private request(method: string, params: object, signal?: AbortSignal, onProgress?: (bytes: number, total: number) => void): Promise<{ result: unknown; blob: WebSocketBlobStream | undefined }> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => this.notify('$/cancelRequest', { id });
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (): void => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (result, blob) => { done(); resolve({ result, blob }); },
        reject: (err) => { done(); reject(err); },
        onProgress,
      });
      this.socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  async openImage(reference: string, signal?: AbortSignal): Promise<number> {
    return (await this.call<{ image: number }>('OpenImage', { reference }, signal)).image;
  }

  async closeImage(image: number): Promise<void> {
    await this.call('CloseImage', { image });
  }

  async getManifest(image: number, signal?: AbortSignal): Promise<{ digest: string; mediaType: string; bytes: Uint8Array }> {
    const result = await this.call<ManifestResult>('GetManifest', { image }, signal);
    return { digest: result.digest, mediaType: result.mediaType, bytes: base64Bytes(result.data) };
  }

  async getLayerInfo(image: number, signal?: AbortSignal): Promise<readonly Layer[]> {
    return (await this.call<{ layers: readonly Layer[] }>('GetLayerInfo', { image }, signal)).layers;
  }

  async getBlob(image: number, digest: string, options: BlobOptions = {}): Promise<WebSocketBlob> {
    const params: GetBlobParams = { image, digest, progress: options.onProgress !== undefined };
    const answer = await this.request('GetBlob', params, options.signal, options.onProgress);
    const result = answer.result as TransferResult;
    const blob = answer.blob!;
    const transfer = result.transfer;
    return {
      transfer,
      size: result.size,
      stream: blob.stream,
      response: (contentType = 'application/octet-stream') => new Response(blob.stream, { headers: { 'Content-Type': contentType } }),
      finish: async () => {
        const error = await blob.outcome;
        await this.call('FinishTransfer', { transfer }).catch((err: unknown) => {
          if (error === undefined) throw err;
        });
        if (error !== undefined) throw toError(error);
      },
      cancel: async () => {
        await this.call('CancelTransfer', { transfer });
        blob.abort({ code: RpcErrorCodes.Cancelled, message: 'transfer cancelled' }, toError);
      },
    };
  }

  /** Shutdown: the proxy answers, then closes the connection. */
  async shutdown(): Promise<void> {
    await this.call('Shutdown', {});
    await this.closed;
  }

  close(): void {
    this.socket.close(1000);
  }

  private notify(method: string, params: object): void {
    if (this.closedWith === undefined) this.socket.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
  }

  private receive(data: unknown): void {
    if (typeof data !== 'string') {
      const frame = readDataFrame(new Uint8Array(data as ArrayBuffer));
      if (frame !== undefined) this.streams.get(frame.transfer)?.onData(frame.bytes);
      return;
    }
    const message = JSON.parse(data) as { id?: number | null; method?: string; params?: Record<string, unknown>; result?: unknown; error?: RpcError };
    if (message.method === 'transfer/end') {
      const transfer = message.params?.transfer as number;
      this.streams.get(transfer)?.onEnd(message.params?.error as RpcError | undefined, toError);
      this.streams.delete(transfer);
      this.progress.delete(transfer);
    } else if (message.method === 'transfer/progress') {
      const p = message.params as { transfer: number; bytes: number; total: number };
      this.progress.get(p.transfer)?.(p.bytes, p.total);
    } else if (typeof message.id === 'number') {
      const pending = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error !== undefined) return pending?.reject(toError(message.error));
      const transfer = (message.result as { transfer?: unknown } | null)?.transfer;
      let blob: WebSocketBlobStream | undefined;
      if (typeof transfer === 'number') {
        // Before resolving: the transfer's frames follow this response at once, maybe in the same tick.
        blob = new WebSocketBlobStream(transfer, this.window, (bytes) => this.notify('transfer/credit', { transfer, bytes }));
        this.streams.set(transfer, blob);
        if (pending?.onProgress !== undefined) this.progress.set(transfer, pending.onProgress);
      }
      pending?.resolve(message.result, blob);
    }
  }

  private fail(err: Error): void {
    this.closedWith ??= err;
    for (const pending of this.pending.values()) pending.reject(err);
    this.pending.clear();
    for (const stream of this.streams.values()) stream.abort({ code: RpcErrorCodes.BrokenPipe, message: err.message }, toError);
    this.streams.clear();
  }
}

function base64Bytes(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
