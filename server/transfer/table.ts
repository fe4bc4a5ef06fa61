/**
 * A session's transfers: each copies one body into one sink in the background, tied to a
 * signal that its image and its session abort. Finishable transfers get a non-zero id that
 * the client hands back to collect the result (the skopeo wire's FinishPipe); the others
 * report their outcome through their delivery (the raw blob's error pipe).
 */
import { CancelledError, InvalidArgumentError } from '../../protocol/errors';
import type { TransferBody } from './body';
import { copyBody, TransferProgress } from './copy';
import type { MemoryGuard } from './memory-guard';
import type { Sink } from './sink';

export interface Transfer {
  /** Non-zero for a finishable transfer, 0 otherwise. */
  readonly id: number;
  /** Settles when the copy has ended; never rejects (the error, if any, is its value). */
  readonly outcome: Promise<Error | undefined>;
  readonly sink: Sink;
  /** Bytes written to the sink so far (progress). */
  readonly progress: { readonly bytes: number };
  /** Bytes expected, -1 when unknown. */
  readonly size: number;
}

/** What a transfer runs under (the session's Lifetime satisfies it): a signal, a way to end it, a way to let go of it. */
export interface TransferScope {
  readonly signal: AbortSignal;
  end(reason: unknown): void;
  release(): void;
}

export interface StartOptions {
  /** The transfer's own lifetime, ended by cancel() and released when the copy ends. */
  readonly lifetime: TransferScope;
  /** Give it an id, keep the sink open after success until finish(), and keep the result for finish(). */
  readonly finishable: boolean;
}

export class TransferTable {
  private readonly finishable = new Map<number, Transfer>();
  private readonly lifetimes = new Map<number, TransferScope>();
  private readonly running = new Set<Promise<Error | undefined>>();
  /** Running transfers that have no id (their sink reports the outcome). */
  private unfinishableRunning = 0;
  private nextId = 1;

  constructor(private readonly guard: MemoryGuard | undefined) {}

  /**
   * Starts copying `body` into `sink`. On failure or cancellation the sink closes at once, so a
   * reader waiting for more bytes sees the end and goes on to collect the error.
   */
  start(body: TransferBody, sink: Sink, options: StartOptions): Transfer {
    const progress = new TransferProgress();
    const { lifetime } = options;
    const outcome = copyBody(body, sink, { signal: lifetime.signal, guard: this.guard, progress }).then(
      () => undefined,
      (err: unknown) => {
        sink.close();
        return err instanceof Error ? err : new Error(String(err));
      },
    );
    void outcome.then(() => lifetime.release());
    this.running.add(outcome);
    if (!options.finishable) this.unfinishableRunning++;
    void outcome.then(() => {
      this.running.delete(outcome);
      if (!options.finishable) this.unfinishableRunning--;
    });
    const transfer: Transfer = { id: options.finishable ? this.allocateId() : 0, outcome, sink, progress, size: body.size };
    if (options.finishable) {
      this.finishable.set(transfer.id, transfer);
      this.lifetimes.set(transfer.id, lifetime);
    }
    return transfer;
  }

  get(id: number): Transfer | undefined {
    return this.finishable.get(id);
  }

  /** Waits for the copy, closes the sink, and throws the copy's error. */
  async finish(id: number, unknown: (id: number) => string = (n) => `finishpipe: no active pipe ${n}`): Promise<void> {
    const transfer = this.finishable.get(id);
    if (transfer === undefined) throw new InvalidArgumentError(unknown(id));
    this.forget(id);
    const err = await transfer.outcome;
    transfer.sink.close();
    if (err !== undefined) throw err;
  }

  /** Ends a finishable transfer now, whatever its state, and forgets it once its copy has stopped. */
  async cancel(id: number): Promise<void> {
    const transfer = this.finishable.get(id);
    if (transfer === undefined) throw new InvalidArgumentError(`no transfer ${id}`);
    this.lifetimes.get(id)?.end(new CancelledError(`transfer ${id} was cancelled`));
    this.forget(id);
    await transfer.outcome;
    transfer.sink.close();
  }

  private forget(id: number): void {
    this.finishable.delete(id);
    this.lifetimes.delete(id);
  }

  /** Waits until every copy has ended (after their signals were aborted), then closes every sink left open. */
  async drain(): Promise<void> {
    await Promise.all([...this.running]);
    for (const transfer of this.finishable.values()) transfer.sink.close();
    this.finishable.clear();
    this.lifetimes.clear();
  }

  get activeCount(): number {
    return this.running.size;
  }

  /** Transfers that still hold something: copying, or waiting for the client to collect them. */
  get heldCount(): number {
    return this.finishable.size + this.unfinishableRunning;
  }

  private allocateId(): number {
    // Opaque, non-zero, and never reused while pending.
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.finishable.has(this.nextId));
    return this.nextId;
  }
}
