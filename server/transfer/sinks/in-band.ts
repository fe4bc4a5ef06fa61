/**
 * In-band sink: a transfer's bytes travel as messages of the connection itself (protocol 1.0's
 * `transfer/data`), under a credit window. The sink sends nothing until start() gives it the
 * way to send (once the response naming the transfer is out), never sends more than the client
 * has granted (the initial window plus every grant()), and waits for each message to be taken
 * by the connection's writer before sending the next. So the copy is backpressured by the
 * slower of the client's credit and the connection, and a transfer holds at most one chunk.
 * A local file span skips the stream: in-band-span.ts reads it by offset into one buffer.
 */
import { Writable } from 'node:stream';
import { BrokenPipeError } from '../../../protocol/errors';
import type { TransferBody } from '../body';
import type { CopyOptions } from '../copy';
import { fileSpanOf } from '../file-span';
import type { Sink } from '../sink';
import { copySpanInBand, type CreditedSender } from './in-band-span';

/**
 * Sends one chunk; resolves once the connection's writer has taken it. The chunk's bytes are
 * encoded or copied before it returns (the span copy reuses its buffer at once).
 */
export type SendChunk = (chunk: Buffer) => Promise<void>;

function closedError(): Error {
  return Object.assign(new Error('in-band transfer closed'), { code: 'EPIPE' });
}

export class InBandSink implements Sink, CreditedSender {
  readonly writable: Writable;
  private send: SendChunk | undefined;
  private credit: number;
  private waiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private closed = false;
  /** No grant will come any more (the client's input ended). */
  private creditEnded = false;

  /**
   * @param window bytes that may be sent before the first grant
   * @param maxChunk largest chunk one message carries
   */
  constructor(private readonly what: string, window: number, private readonly maxChunk: number) {
    this.credit = window;
    this.writable = new Writable({
      highWaterMark: maxChunk,
      write: (chunk: Buffer, _encoding, done) => {
        this.sendAll(chunk).then(() => done(), done);
      },
    });
    // Failures are reported through the copy; an unheard 'error' must not crash the process.
    this.writable.on('error', () => undefined);
  }

  /** Bytes that may still be sent before the next grant. */
  get available(): number {
    return this.credit;
  }

  /** A local file span is read by offset (in-band-span.ts); any other body goes through `writable`. */
  directCopy(body: TransferBody, options: CopyOptions): Promise<void> | undefined {
    const span = fileSpanOf(body.stream);
    return span === undefined ? undefined : copySpanInBand(span, body, this, this.maxChunk, options);
  }

  async nextWindow(): Promise<number> {
    await this.ready();
    return this.credit;
  }

  sendNow(chunk: Buffer): Promise<void> {
    if (this.closed || this.send === undefined || chunk.length > this.credit) return Promise.reject(closedError()); // nextWindow() first
    this.credit -= chunk.length;
    return this.send(chunk);
  }

  /** Lets data flow, through `send`. */
  start(send: SendChunk): void {
    this.send = send;
    this.wake();
  }

  /** The client's credit: `bytes` more may be sent. */
  grant(bytes: number): void {
    this.credit = Math.min(this.credit + bytes, Number.MAX_SAFE_INTEGER);
    this.wake();
  }

  /** No more grants will come: once the credit left is used, the transfer fails as if the reader had gone. */
  endCredit(): void {
    this.creditEnded = true;
    this.wake();
  }

  describeFailure(err: Error): Error {
    return (err as NodeJS.ErrnoException).code === 'EPIPE' ? new BrokenPipeError(this.what, { cause: err }) : err;
  }

  /** Stops sending: a pending write fails, later ones too. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(closedError());
    this.writable.destroy();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve();
  }

  /** The way to send, once started with credit left. */
  private async ready(): Promise<SendChunk> {
    while (!this.closed && (this.send === undefined || this.credit <= 0)) {
      if (this.creditEnded && this.credit <= 0) throw closedError();
      await new Promise<void>((resolve, reject) => {
        this.waiter = { resolve, reject };
      });
    }
    if (this.closed || this.send === undefined) throw closedError();
    return this.send;
  }

  private async sendAll(chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length;) {
      const send = await this.ready();
      const length = Math.min(chunk.length - offset, this.maxChunk, this.credit);
      this.credit -= length;
      await send(chunk.subarray(offset, offset + length));
      offset += length;
    }
  }
}
