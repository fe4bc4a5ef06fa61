/**
 * How a 1.0 transfer's bytes reach the client, by the payload chosen at Initialize: a pipe's read
 * end on the response (`fd`), a FIFO path in the result (`fifo`, when the wire was given a way
 * to open one), or `transfer/data` notifications under the client's credit (`stream`), closed by
 * `transfer/end`. Every transfer is finishable (FinishTransfer, CancelTransfer). Nothing about a
 * transfer is sent before the response that names it; a response that could not be sent cancels
 * its transfer. The sink closes when the copy ends, well or not, so a reader sees the end of the
 * bytes at once; FinishTransfer tells which. `progress: true` adds `transfer/progress` at most every PROGRESS_INTERVAL_MS.
 */
import type { MessageConnection, NotificationType } from 'vscode-jsonrpc/node';
import { InternalError } from '../../../protocol/errors';
import {
  Notifications1, PROGRESS_INTERVAL_MS, type PayloadKind, type TransferCreditParams, type TransferResult,
} from '../../../protocol/jsonrpc';
import type { Logger } from '../../log';
import type { PendingTransfer } from '../../service/methods-1';
import type { Session } from '../../service/session';
import { InBandSink } from '../../transfer/sinks/in-band';
import { openPipeSink } from '../../transfer/sinks/fd-pipe';
import type { SessionFifos } from '../../transfer/sinks/fifo';
import { openFifoSink } from '../../transfer/sinks/fifo-sink';
import type { Transfer } from '../../transfer/table';
import { Base64Chunk } from './base64-chunk';
import { rpcErrorOf } from './error-code';
import type { TransferHandouts } from './handouts';

export interface DeliveryOptions {
  readonly session: Session;
  readonly connection: MessageConnection;
  readonly handouts: TransferHandouts;
  readonly log: Logger;
  readonly payload: PayloadKind;
  /** Stream payloads: the initial credit of each transfer. */
  readonly window: number;
  /** Stream payloads: the largest chunk of one `transfer/data`. */
  readonly streamChunk: number;
  /** Stream payloads: the framing's own way to send bytes (RpcTransport.sendStreamChunk), else `transfer/data`. */
  readonly sendStreamChunk: ((transfer: number, chunk: Buffer) => Promise<void>) | undefined;
  readonly fifos: SessionFifos | undefined;
}

export class TransferDelivery {
  /** Stream transfers still sending, for credit (a transfer FinishTransfer waits on is still here). */
  private readonly streams = new Map<number, InBandSink>();

  constructor(private readonly options: DeliveryOptions) {}

  /** Starts the transfer and answers its result; the rest follows once that result is written. */
  deliver(pendingTransfer: PendingTransfer): TransferResult {
    const { session, handouts, payload } = this.options;
    const { pending, size, progress } = pendingTransfer;
    const what = pending.body.what;
    if (payload === 'fd') {
      const { transfer, handout } = session.startTransfer(pending, () => openPipeSink(what), true);
      handouts.add(transfer.id, { fd: handout.readFd, onWritten: (sent) => this.afterResponse(transfer, sent, progress, undefined) });
      return { transfer: transfer.id, size };
    }
    if (payload === 'fifo') {
      const fifos = this.options.fifos;
      if (fifos === undefined) throw new InternalError('fifo payload chosen without a way to open FIFOs'); // Initialize never chooses it then
      const { transfer, handout } = session.startTransfer(pending, () => openFifoSink(fifos, what), true);
      handouts.add(transfer.id, { fd: undefined, onWritten: (sent) => this.afterResponse(transfer, sent, progress, undefined) });
      return { transfer: transfer.id, size, path: handout.path };
    }
    const sink = new InBandSink(what, this.options.window, this.options.streamChunk);
    const { transfer } = session.startTransfer(pending, () => ({ sink }), true);
    this.streams.set(transfer.id, sink);
    handouts.add(transfer.id, { fd: undefined, onWritten: (sent) => this.afterResponse(transfer, sent, progress, sink) });
    return { transfer: transfer.id, size };
  }

  /** `transfer/credit`: more room for a stream transfer; anything else is ignored (a notification has no answer). */
  credit(params: unknown): void {
    const { transfer, bytes } = (typeof params === 'object' && params !== null ? params : {}) as Partial<Record<keyof TransferCreditParams, unknown>>;
    if (!Number.isSafeInteger(transfer) || !Number.isSafeInteger(bytes) || (bytes as number) < 0) {
      this.options.log.debug(`ignored transfer/credit with params ${JSON.stringify(params)?.slice(0, 200)}`);
      return;
    }
    const sink = this.streams.get(transfer as number);
    if (sink === undefined) {
      this.options.log.debug(`ignored transfer/credit for transfer ${transfer as number}: no such stream transfer in progress`);
      return;
    }
    sink.grant(bytes as number);
  }

  /** The client can send nothing more: each stream transfer ends once its credit is used up. */
  endOfInput(): void {
    for (const sink of this.streams.values()) sink.endCredit();
  }

  private afterResponse(transfer: Transfer, sent: boolean, progress: boolean, stream: InBandSink | undefined): void {
    const { session, connection } = this.options;
    const id = transfer.id;
    if (!sent) {
      this.streams.delete(id);
      session.cancelTransfer(id).catch(() => undefined); // nobody knows its id: free it now
      return;
    }
    const sendStreamChunk = this.options.sendStreamChunk;
    // The writer encodes a Base64Chunk into the message itself; on the wire `data` is the base64 string the type says.
    stream?.start(sendStreamChunk !== undefined
      ? (chunk) => sendStreamChunk(id, chunk)
      : (chunk) => connection.sendNotification(Notifications1.TransferData, { transfer: id, data: new Base64Chunk(chunk) as unknown as string }));
    const stopProgress = progress ? this.reportProgress(transfer) : undefined;
    void transfer.outcome.then((err) => {
      // Unlike 0.2.x's FinishPipe, the reader sees the end as soon as the copy ends; FinishTransfer still reports how.
      transfer.sink.close();
      stopProgress?.();
      if (stream === undefined) return;
      this.streams.delete(id);
      this.notify(Notifications1.TransferEnd, err === undefined ? { transfer: id } : { transfer: id, error: rpcErrorOf(err) });
    });
  }

  /** Sends `transfer/progress` when the count moved, at most every PROGRESS_INTERVAL_MS; the returned stop sends the final one. */
  private reportProgress(transfer: Transfer): () => void {
    let reported = -1;
    let sending = false;
    const report = (): void => {
      const bytes = transfer.progress.bytes;
      if (bytes === reported || sending) return;
      reported = bytes;
      sending = true;
      void this.notify(Notifications1.TransferProgress, { transfer: transfer.id, bytes, total: transfer.size }).finally(() => {
        sending = false;
      });
    };
    const timer = setInterval(report, PROGRESS_INTERVAL_MS);
    return () => {
      clearInterval(timer);
      sending = false;
      report();
    };
  }

  /** Sends a notification; a connection already gone is not an error here (the session is closing). */
  private notify<P>(type: NotificationType<P>, params: P): Promise<void> {
    try {
      return this.options.connection.sendNotification(type, params).catch(() => undefined);
    } catch {
      return Promise.resolve();
    }
  }
}
