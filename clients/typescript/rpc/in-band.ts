/**
 * Receiving `stream` payloads: `transfer/data` chunks become a Readable, and credit goes back
 * to the proxy as the consumer reads them, so at most one window (plus the Readable's own
 * buffer) is ever held here however slow the consumer is. The base64 is decoded by the native
 * addon, strictly: a chunk that is not padded standard base64 fails the transfer (nothing
 * wrong is passed on), where Buffer.from(text, 'base64') would skip what it does not know.
 */
import { Readable } from 'node:stream';
import { Notifications1, RpcErrorCodes, type RpcError, type TransferDataParams, type TransferEndParams } from '../../../protocol/jsonrpc';
import { native } from '../../../protocol/seqpacket/native';
import { ProxyRpcError } from './errors';

/** The bytes of one chunk's base64 text, or the error that makes the transfer fail. */
export function decodeChunk(transfer: number, text: Uint8Array): Buffer | RpcError {
  const n = text.length;
  const padding = n >= 4 && n % 4 === 0 ? (text[n - 1] === 0x3d ? 1 : 0) + (text[n - 2] === 0x3d ? 1 : 0) : 0;
  const bytes = Buffer.allocUnsafe(n % 4 === 0 ? (n / 4) * 3 - padding : 0);
  const written = native.base64Decode(text, 0, n, bytes, 0);
  if (written >= 0) return bytes;
  const at = -written - 1;
  const what = at < n ? `byte ${at} (${JSON.stringify(String.fromCharCode(text[at]!))})` : `its length (${n}, not a multiple of 4)`;
  return { code: RpcErrorCodes.InvalidParams, message: `transfer/data of transfer ${transfer} is not padded standard base64: ${what} of its data is wrong` };
}

/** Credit is returned in batches of at least this share of the window. */
const CREDIT_BATCH_DIVISOR = 4;

export class InBandStream extends Readable {
  private received = 0;
  private credited = 0;
  private ended = false;
  /** Why this client refused a chunk of the transfer (it then asked the proxy to stop). */
  refused: RpcError | undefined;
  /** Settles with the proxy's `transfer/end`: undefined when every byte came and was verified. */
  readonly outcome: Promise<RpcError | undefined>;
  private settle!: (error: RpcError | undefined) => void;

  constructor(
    readonly transfer: number,
    private readonly window: number,
    private readonly grant: (bytes: number) => void,
    /** Asks the proxy to stop sending (the client will read no more of this transfer). */
    private readonly stop: () => void,
  ) {
    super({ highWaterMark: Math.min(window, 1024 * 1024) });
    this.outcome = new Promise((resolve) => { this.settle = resolve; });
  }

  /** One chunk's bytes, or the error its text was (the transfer then fails and `stop` is called once). */
  onData(chunk: Buffer | RpcError): void {
    if (this.ended) return;
    if (!Buffer.isBuffer(chunk)) {
      this.ended = true;
      this.refused = chunk;
      this.settle(chunk);
      this.stop();
      this.destroy(new ProxyRpcError(Notifications1.TransferData.method, chunk));
      return;
    }
    this.received += chunk.length;
    this.push(chunk);
  }

  onEnd(params: TransferEndParams): void {
    if (this.ended) return;
    this.ended = true;
    this.settle(params.error);
    this.push(null);
  }

  /** The connection went away: the stream ends and the outcome says why. */
  abandon(error: RpcError): void {
    this.onEnd({ transfer: this.transfer, error });
  }

  /**
   * Credit is settled after each read, when what it took has left the buffer: Readable calls
   * _read before taking, and not again until the next push, which never comes once the proxy
   * has used all its credit (the transfer stalled so).
   */
  override read(size?: number): unknown {
    const chunk: unknown = super.read(size);
    this.settleCredit();
    return chunk;
  }

  override _read(): void {
    this.settleCredit();
  }

  /** Grants what was consumed, in batches, or all of it when the proxy has no credit left. */
  private settleCredit(): void {
    if (this.ended) return;
    const consumed = this.received - this.readableLength;
    const owed = consumed - this.credited;
    const proxyOutOfCredit = this.received >= this.credited + this.window;
    if (owed > 0 && (owed >= this.window / CREDIT_BATCH_DIVISOR || proxyOutOfCredit)) {
      this.credited += owed;
      this.grant(owed);
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.ended = true;
    this.settle({ code: RpcErrorCodes.Cancelled, message: 'the reader stopped reading' }); // no-op after a bad chunk settled it
    callback(err);
  }
}

/** Routes the proxy's transfer notifications to their streams, holding the few that arrive before the response naming them. */
export class InBandStreams {
  private readonly streams = new Map<number, InBandStream>();
  private readonly early = new Map<number, Array<{ data?: Buffer | RpcError; end?: TransferEndParams }>>();

  add(stream: InBandStream): void {
    this.streams.set(stream.transfer, stream);
    void stream.outcome.then(() => this.streams.delete(stream.transfer));
    for (const item of this.early.get(stream.transfer) ?? []) {
      if (item.data !== undefined) stream.onData(item.data);
      if (item.end !== undefined) stream.onEnd(item.end);
    }
    this.early.delete(stream.transfer);
  }

  /** A `transfer/data` that came as a message. */
  data(params: TransferDataParams): void {
    const { transfer, data } = params;
    if (typeof data === 'string') return this.dataText(transfer, Buffer.from(data, 'utf8'));
    this.route(transfer, { code: RpcErrorCodes.InvalidParams, message: `transfer/data of transfer ${transfer} has no base64 string as its data` });
  }

  /** A `transfer/data`'s base64 text, straight from the message's bytes (valid only during the call: it is decoded now). */
  dataText(transfer: number, text: Uint8Array): void {
    this.route(transfer, decodeChunk(transfer, text));
  }

  end(params: TransferEndParams): void {
    const stream = this.streams.get(params.transfer);
    if (stream !== undefined) stream.onEnd(params);
    else this.hold(params.transfer, { end: params });
  }

  abandonAll(error: RpcError): void {
    for (const stream of this.streams.values()) stream.abandon(error);
    this.early.clear();
  }

  private route(transfer: number, chunk: Buffer | RpcError): void {
    const stream = this.streams.get(transfer);
    if (stream !== undefined) stream.onData(chunk);
    else this.hold(transfer, { data: chunk });
  }

  private hold(transfer: number, item: { data?: Buffer | RpcError; end?: TransferEndParams }): void {
    const list = this.early.get(transfer) ?? [];
    list.push(item);
    this.early.set(transfer, list);
  }
}
