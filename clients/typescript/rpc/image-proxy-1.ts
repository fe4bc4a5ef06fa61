/**
 * The TypeScript client of protocol 1.0 (JSON-RPC 2.0). One connection carries any number of
 * concurrent calls; each may be cancelled with an AbortSignal ($/cancelRequest). Blobs arrive
 * as a Readable whichever payload the proxy chose: a pipe's read end (fd), a FIFO, or in-band
 * chunks under a credit window.
 *
 *   const proxy = await RpcImageProxy.spawn();           // layerpipe experimental-image-proxy, 1.0
 *   const image = await proxy.openImage('oci:/srv/layout:latest');
 *   const blob = await proxy.getBlob(image, digest);
 *   const [bytes] = await Promise.all([readAll(blob.stream), blob.finish()]);
 *   await proxy.shutdown();
 */
import { open } from 'node:fs';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import {
  CancellationTokenSource, ConnectionError, createMessageConnection, ErrorCodes, ResponseError, type Message, type MessageConnection, type MessageReader, type MessageWriter,
} from 'vscode-jsonrpc/node';
import {
  DEFAULT_STREAM_WINDOW, Notifications1, PROTOCOL_VERSION_1, Requests1, RpcErrorCodes,
  type Instance, type Layer, type SignatureInfo, type Method1, type ParamsOf1, type PayloadKind, type Platform, type ResultOf1,
  type RpcError, type TransferProgressParams, type TransferResult,
} from '../../../protocol/jsonrpc';
import { ProxyClosedError } from '../errors';
import { pipeReadable } from '../pipes';
import { ProxyRpcError, rpcErrorFrom } from './errors';
import { InBandStream, InBandStreams } from './in-band';
import type { ReceivedFds } from './packet-messages';
import type { TransferDataTap } from './transfer-data';

export interface CallOptions {
  /** Aborting sends $/cancelRequest; the call rejects with the proxy's Cancelled error or the abort reason. */
  readonly signal?: AbortSignal;
}

export interface BlobOptions extends CallOptions {
  /** GetBlob only: called with bytes sent so far and the total, at most ten times a second. */
  readonly onProgress?: (bytes: number, total: number) => void;
}

export interface RawBlobOptions extends CallOptions {
  readonly offset?: number;
  readonly length?: number;
}

/** A blob being received. Read `stream` and call finish() together: finish() settles once every byte was sent and checked. */
export interface RpcBlob {
  readonly transfer: number;
  /** Bytes that will be sent, -1 when unknown. */
  readonly size: number;
  readonly stream: Readable;
  /** FinishTransfer: resolves when the transfer ended well, rejects with its error (short, digest mismatch, …). */
  finish(): Promise<void>;
  /** CancelTransfer: stops the transfer and ends the stream. */
  cancel(): Promise<void>;
}

export interface ManifestBytes {
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

/** What the connection underneath provides besides messages. */
export interface RpcTransport {
  readonly reader: MessageReader;
  readonly writer: MessageWriter;
  /** Payload kinds this transport can receive, in the order this client prefers them. */
  readonly payloads: readonly PayloadKind[];
  /** The proxy's process id when it is a child of this process. */
  readonly pid?: number;
  /** fd payloads: the read ends that came with transfer responses. */
  readonly fds?: ReceivedFds;
  /** Has the transport hand `transfer/data` to `tap` from its bytes rather than as messages (transfer-data.ts). */
  tapTransferData?(tap: TransferDataTap): void;
  /** Closes the transport and waits for the peer (a child process's exit status). */
  close(): Promise<number | null>;
}

export interface ConnectOptions {
  /** Payload preference; default: the transport's own order. */
  readonly payloads?: readonly PayloadKind[];
  /** In-band window to ask for; default ASKED_STREAM_WINDOW. */
  readonly window?: number;
}

/**
 * The in-band window this client asks for unless told otherwise: 4 MiB, not the protocol's 1
 * MiB default. With 256 KiB chunks, 1 MiB keeps only four in flight, so the proxy waited for
 * credit each round trip (stdio stream 0.55 of 0.2.x fd against 0.69 with 4 MiB, same run in
 * protocol-1-bench). A transfer holds at most the window here, and the proxy one chunk.
 */
export const ASKED_STREAM_WINDOW = 4 * 1024 * 1024;

export class RpcImageProxy {
  private readonly connection: MessageConnection;
  private readonly streams = new InBandStreams();
  private readonly progress = new Map<number, (bytes: number, total: number) => void>();
  private payloadKind: PayloadKind = 'stream';
  private window = DEFAULT_STREAM_WINDOW;
  private closed: Promise<number | null> | undefined;
  private serverVersion = '';
  /** The connection closed: every call fails with ProxyClosedError. */
  private gone = false;

  private constructor(private readonly transport: RpcTransport) {
    this.connection = createMessageConnection(transport.reader, writerThatNeverRejects(transport.writer));
    // Chunks the transport recognises skip vscode-jsonrpc's queue; they only ever overtake messages
    // sent before them, which InBandStreams allows for (it holds chunks that precede their response).
    transport.tapTransferData?.((transfer, text) => this.streams.dataText(transfer, text));
    this.connection.onNotification(Notifications1.TransferData, (p) => this.streams.data(p));
    this.connection.onNotification(Notifications1.TransferEnd, (p) => {
      this.streams.end(p);
      this.progress.delete(p.transfer);
    });
    this.connection.onNotification(Notifications1.TransferProgress, (p: TransferProgressParams) => this.progress.get(p.transfer)?.(p.bytes, p.total));
    this.connection.onClose(() => {
      this.gone = true;
      this.streams.abandonAll({ code: RpcErrorCodes.BrokenPipe, message: 'the connection to the proxy closed' });
      // Rejects every call still waiting for its answer, after vscode-jsonrpc has handled the
      // messages that arrived before the end (it queues them for a later turn).
      setImmediate(() => this.connection.dispose());
    });
    this.connection.listen();
  }

  /** Speaks 1.0 over `transport` and runs Initialize. */
  static async connect(transport: RpcTransport, options: ConnectOptions = {}): Promise<RpcImageProxy> {
    const proxy = new RpcImageProxy(transport);
    try {
      const result = await proxy.request('Initialize', {
        protocolVersion: '1.0',
        payloads: options.payloads ?? transport.payloads,
        window: options.window ?? ASKED_STREAM_WINDOW,
      });
      proxy.payloadKind = result.payload;
      proxy.window = result.window;
      proxy.serverVersion = result.protocolVersion;
    } catch (err) {
      await proxy.close();
      throw err;
    }
    return proxy;
  }

  /** The payload kind the proxy chose at Initialize. */
  get payload(): PayloadKind {
    return this.payloadKind;
  }

  /** The proxy's process id when this client started it. */
  get pid(): number | undefined {
    return this.transport.pid;
  }

  get protocolVersion(): string {
    return this.serverVersion;
  }

  async openImage(reference: string, options?: CallOptions): Promise<number> {
    return (await this.request('OpenImage', { reference }, options)).image;
  }

  /** null when the image does not exist. */
  async openImageOptional(reference: string, options?: CallOptions): Promise<number | null> {
    return (await this.request('OpenImageOptional', { reference }, options)).image;
  }

  async closeImage(image: number): Promise<void> {
    await this.request('CloseImage', { image });
  }

  async getManifest(image: number, options: { raw?: boolean; platform?: Platform } & CallOptions = {}): Promise<ManifestBytes> {
    const { signal, ...params } = options;
    const result = await this.request('GetManifest', { image, ...params }, { signal });
    return { digest: result.digest, mediaType: result.mediaType, bytes: Buffer.from(result.data, 'base64') };
  }

  async listInstances(image: number): Promise<readonly Instance[]> {
    return (await this.request('ListInstances', { image })).instances;
  }

  async listTags(reference: string, options?: CallOptions): Promise<readonly string[]> {
    return (await this.request('ListTags', { reference }, options)).tags;
  }

  async getFullConfig(image: number): Promise<{ digest: string; bytes: Buffer }> {
    const result = await this.request('GetFullConfig', { image });
    return { digest: result.digest, bytes: Buffer.from(result.data, 'base64') };
  }

  async getConfig(image: number): Promise<Buffer> {
    return Buffer.from((await this.request('GetConfig', { image })).data, 'base64');
  }

  async getLayerInfo(image: number): Promise<readonly Layer[]> {
    return (await this.request('GetLayerInfo', { image })).layers;
  }

  /** The image's signatures, each with what it claims and whether the proxy's policy accepts it. */
  async getSignatures(image: number): Promise<readonly SignatureInfo[]> {
    return (await this.request('GetSignatures', { image })).signatures;
  }

  /** A verified blob: its size and digest are checked as it goes by; finish() reports a mismatch. */
  async getBlob(image: number, digest: string, size?: number, options: BlobOptions = {}): Promise<RpcBlob> {
    const params = { image, digest, ...(size === undefined ? {} : { size }), ...(options.onProgress === undefined ? {} : { progress: true }) };
    const result = await this.request('GetBlob', params, options);
    if (options.onProgress !== undefined) this.progress.set(result.transfer, options.onProgress);
    return this.receive(result);
  }

  /** Blob bytes as stored, unverified; `offset`/`length` read a range. */
  async getRawBlob(image: number, digest: string, options: RawBlobOptions = {}): Promise<RpcBlob> {
    const { signal, ...range } = options;
    return this.receive(await this.request('GetRawBlob', { image, digest, ...range }, { signal }));
  }

  /** Shutdown, then waits for the proxy to go; its exit status when it was a child process. */
  async shutdown(): Promise<number | null> {
    try {
      await this.request('Shutdown', {});
    } catch (err) {
      // The proxy may close the connection as its answer is on its way: it is going, as asked.
      if (!(err instanceof ProxyClosedError) && !(err instanceof ProxyRpcError && err.rpcCode === RpcErrorCodes.BrokenPipe)) throw err;
    }
    return this.close();
  }

  /** Ends the connection without Shutdown. Idempotent. */
  close(): Promise<number | null> {
    this.closed ??= (async () => {
      this.connection.dispose();
      this.transport.fds?.closeAll();
      return this.transport.close();
    })();
    return this.closed;
  }

  private async receive(result: TransferResult): Promise<RpcBlob> {
    const { transfer, size } = result;
    let stream: Readable;
    let ended: Promise<RpcError | undefined> = Promise.resolve(undefined);
    let inBand: InBandStream | undefined;
    if (this.payloadKind === 'stream') {
      inBand = new InBandStream(transfer, this.window, (bytes) => {
        void this.connection.sendNotification(Notifications1.TransferCredit, { transfer, bytes }).catch(() => undefined);
      }, () => void this.request('CancelTransfer', { transfer }).catch(() => undefined));
      this.streams.add(inBand);
      stream = inBand;
      ended = inBand.outcome;
    } else if (this.payloadKind === 'fifo') {
      if (result.path === undefined) throw new ProxyRpcError('GetBlob', { code: RpcErrorCodes.InternalError, message: 'the proxy sent no FIFO path' });
      // Opening blocks (in libuv's pool, not here) until the proxy opens its end.
      stream = pipeReadable(await promisify(open)(result.path, 'r'));
    } else {
      const fd = this.transport.fds?.take(transfer);
      if (fd === undefined) throw new ProxyRpcError('GetBlob', { code: RpcErrorCodes.InternalError, message: `no pipe came with transfer ${transfer}` });
      stream = pipeReadable(fd);
    }
    const finish = async (): Promise<void> => {
      try {
        await this.request('FinishTransfer', { transfer });
      } catch (err) {
        // A chunk this client refused (bad base64) cancelled the transfer: that is the news, not the cancellation.
        const refused = inBand?.refused;
        if (refused !== undefined) throw rpcErrorFrom(Notifications1.TransferData.method, refused);
        throw err;
      }
      const error = await ended;
      if (error !== undefined) throw rpcErrorFrom('FinishTransfer', error);
    };
    const cancel = async (): Promise<void> => {
      stream.destroy();
      await this.request('CancelTransfer', { transfer });
    };
    return { transfer, size, stream, finish, cancel };
  }

  private async request<M extends Method1>(method: M, params: ParamsOf1<M>, options: CallOptions = {}): Promise<ResultOf1<M>> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.gone || this.closed !== undefined) throw new ProxyClosedError(`${method}: the connection to the proxy is closed`);
    const source = new CancellationTokenSource();
    const onAbort = (): void => source.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const type = Requests1[method] as unknown as Parameters<MessageConnection['sendRequest']>[0];
      return (await this.connection.sendRequest(type as never, params as never, source.token)) as ResultOf1<M>;
    } catch (err) {
      if ((err instanceof ResponseError && err.code === ErrorCodes.PendingResponseRejected) || err instanceof ConnectionError) {
        throw new ProxyClosedError(`${method}: the connection to the proxy closed before it answered`, { cause: err });
      }
      if (err instanceof ResponseError) throw rpcErrorFrom(method, { code: err.code, message: err.message, data: err.data as RpcError['data'] });
      if (signal?.aborted === true) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      source.dispose();
    }
  }
}

/**
 * vscode-jsonrpc 8.2 turns a writer's rejection into an unhandled rejection (sendRequest throws
 * inside a promise executor). A failed write means the proxy is gone, which the reader reports
 * as the connection's close; so the write is reported as an error event and not rejected.
 */
function writerThatNeverRejects(writer: MessageWriter): MessageWriter {
  return {
    onError: writer.onError,
    onClose: writer.onClose,
    write: (message: Message) => writer.write(message).catch(() => undefined),
    end: () => writer.end(),
    dispose: () => writer.dispose(),
  };
}
