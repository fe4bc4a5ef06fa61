/**
 * Receiving `stream` payloads: `transfer/data` chunks become a Readable, and credit goes back
 * to the proxy as the consumer reads them, so at most one window (plus the Readable's own
 * buffer) is ever held here however slow the consumer is.
 */
import { Readable } from 'node:stream';
import type { RpcError, TransferDataParams, TransferEndParams } from '../../../protocol/jsonrpc';

/** Credit is returned in batches of at least this share of the window. */
const CREDIT_BATCH_DIVISOR = 4;

export class InBandStream extends Readable {
  private received = 0;
  private credited = 0;
  private ended = false;
  /** Settles with the proxy's `transfer/end`: undefined when every byte came and was verified. */
  readonly outcome: Promise<RpcError | undefined>;
  private settle!: (error: RpcError | undefined) => void;

  constructor(
    readonly transfer: number,
    private readonly window: number,
    private readonly grant: (bytes: number) => void,
  ) {
    super({ highWaterMark: Math.min(window, 1024 * 1024) });
    this.outcome = new Promise((resolve) => { this.settle = resolve; });
  }

  onData(params: TransferDataParams): void {
    if (this.ended) return;
    const bytes = Buffer.from(params.data, 'base64');
    this.received += bytes.length;
    this.push(bytes);
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

  override _read(): void {
    if (this.ended) return;
    const consumed = this.received - this.readableLength;
    const owed = consumed - this.credited;
    if (owed > 0 && owed >= this.window / CREDIT_BATCH_DIVISOR) {
      this.credited += owed;
      this.grant(owed);
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.ended = true;
    this.settle({ code: -32800, message: 'the reader stopped reading' });
    callback(err);
  }
}

/** Routes the proxy's transfer notifications to their streams, holding the few that arrive before the response naming them. */
export class InBandStreams {
  private readonly streams = new Map<number, InBandStream>();
  private readonly early = new Map<number, Array<{ data?: TransferDataParams; end?: TransferEndParams }>>();

  add(stream: InBandStream): void {
    this.streams.set(stream.transfer, stream);
    void stream.outcome.then(() => this.streams.delete(stream.transfer));
    for (const item of this.early.get(stream.transfer) ?? []) {
      if (item.data !== undefined) stream.onData(item.data);
      if (item.end !== undefined) stream.onEnd(item.end);
    }
    this.early.delete(stream.transfer);
  }

  data(params: TransferDataParams): void {
    const stream = this.streams.get(params.transfer);
    if (stream !== undefined) stream.onData(params);
    else this.hold(params.transfer, { data: params });
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

  private hold(transfer: number, item: { data?: TransferDataParams; end?: TransferEndParams }): void {
    const list = this.early.get(transfer) ?? [];
    list.push(item);
    this.early.set(transfer, list);
  }
}
