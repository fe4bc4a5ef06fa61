/**
 * A stream transfer received over the WebSocket as a web ReadableStream. Credit goes back to the
 * proxy as the consumer reads, so at most one window is ever queued here however slow it is.
 * No Node APIs: this runs in browsers and WebAssembly hosts.
 */
import type { RpcError } from '../../../protocol/jsonrpc';

/** Credit is returned in batches of at least this share of the window. */
const CREDIT_BATCH_DIVISOR = 4;

export class WebSocketBlobStream {
  readonly stream: ReadableStream<Uint8Array>;
  /** Settles with the proxy's `transfer/end`: undefined when every byte came and was verified. */
  readonly outcome: Promise<RpcError | undefined>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private settle!: (error: RpcError | undefined) => void;
  private received = 0;
  private credited = 0;
  private ended = false;

  constructor(readonly transfer: number, private readonly window: number, private readonly grant: (bytes: number) => void) {
    this.outcome = new Promise((resolve) => { this.settle = resolve; });
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => { this.controller = controller; },
      pull: () => this.returnCredit(),
    }, { highWaterMark: window, size: (chunk) => chunk.byteLength });
  }

  onData(bytes: Uint8Array): void {
    if (this.ended) return;
    this.received += bytes.byteLength;
    this.controller.enqueue(bytes);
  }

  /** `transfer/end`: a failed transfer errors the stream, so a reader never takes a short blob for a whole one. */
  onEnd(error: RpcError | undefined, toError: (e: RpcError) => Error): void {
    if (this.ended) return;
    this.ended = true;
    this.settle(error);
    try {
      if (error === undefined) this.controller.close();
      else this.controller.error(toError(error));
    } catch {
      // Already cancelled by the consumer.
    }
  }

  /** The connection is gone before `transfer/end`. */
  abort(error: RpcError, toError: (e: RpcError) => Error): void {
    this.onEnd(error, toError);
  }

  private returnCredit(): void {
    if (this.ended) return;
    const queued = this.window - (this.controller.desiredSize ?? 0);
    const consumed = this.received - Math.max(0, queued);
    const due = consumed - this.credited;
    if (due >= this.window / CREDIT_BATCH_DIVISOR) {
      this.credited += due;
      this.grant(due);
    }
  }
}
