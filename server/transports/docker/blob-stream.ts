/**
 * A blob download that survives cut and stalled connections: one Readable over as many HTTP
 * responses as it takes, each later one a Range request from the first byte not yet delivered.
 * The consumer sees one clean stream (digest checks happen above, in the handler).
 *
 * Backpressure is passed through (the network body is paused while the consumer is full), and
 * the stall clock only runs while the consumer is waiting for bytes: a slow reader is not a
 * stalled server.
 */
import { Readable } from 'node:stream';
import { CancelledError, LayerpipeError, RetryableError, errorMessage, isTransient } from '../../../protocol/errors';
import { sleep } from './retry';

/** One HTTP response body to read from, and how many of its leading bytes to drop. */
export interface OpenedBody {
  readonly body: Readable;
  /** A server that ignored Range sends the blob from byte 0: skip what was delivered. */
  readonly skip: number;
}

export interface ResumableOptions {
  /** What is downloaded, for messages. */
  readonly what: string;
  /** Total size if known (Content-Length of the first response), else -1. */
  readonly totalSize: number;
  /**
   * Deliver at most this many bytes, then end and drop the connection: a registry that answers
   * a range request with the whole blob (200) runs on past the range.
   */
  readonly limit?: number | undefined;
  /** No byte for this long while the consumer waits: the connection is given up and resumed. */
  readonly stallTimeoutMs: number;
  /** Reconnects in a row that deliver nothing before the download fails. */
  readonly maxAttemptsWithoutProgress: number;
  /** Reconnects over the whole download before it fails. */
  readonly maxResumes: number;
  /** Delay before the n-th reconnect in a row (1-based). */
  readonly backoffMs: (attempt: number) => number;
  /** Opens the blob again from `offset` (a Range request). */
  readonly reopen: (offset: number, signal: AbortSignal) => Promise<OpenedBody>;
  /** The client went away: stop everything. */
  readonly signal?: AbortSignal;
  readonly onResume?: (offset: number, reason: string) => void;
}

class StallError extends RetryableError {
  override name = 'StallError';
}

export class ResumableBlobStream extends Readable {
  private delivered = 0;
  private current: Readable | undefined;
  private toSkip = 0;
  private stallTimer: NodeJS.Timeout | undefined;
  private wanted = false;
  private reconnecting = false;
  private attemptsWithoutProgress = 0;
  private resumes = 0;
  /** options.limit and options.totalSize, until shortenTo(). */
  private limit: number | undefined;
  private expected: number;
  private readonly aborter = new AbortController();
  private readonly onAbort = (): void => {
    // Its image was closed or its session ended: a cancellation, not a network fault.
    this.destroy(new CancelledError(`${this.options.what}: aborted`));
  };

  constructor(first: OpenedBody, private readonly options: ResumableOptions) {
    // Little is needed here: the client pipe's kernel buffer (512 KiB) is the real slack.
    super({ highWaterMark: 64 * 1024 });
    this.limit = options.limit;
    this.expected = options.totalSize;
    if (options.signal?.aborted) queueMicrotask(this.onAbort);
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.attach(first);
  }

  /**
   * From now on deliver only the first `length` bytes (at least those delivered already): the
   * rest of this body is fetched elsewhere (blob-parallel.ts splits a running stream).
   */
  shortenTo(length: number): void {
    if (length < this.delivered) throw new RangeError(`cannot shorten to ${length} bytes after ${this.delivered} were delivered`);
    this.limit = length;
    this.expected = length;
  }

  /** Bytes handed to the consumer so far. */
  get bytesDelivered(): number {
    return this.delivered;
  }

  /** Reconnects made so far. */
  get resumeCount(): number {
    return this.resumes;
  }

  override _read(): void {
    this.wanted = true;
    if (this.current !== undefined && !this.reconnecting) {
      this.current.resume();
      this.armStallTimer();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.clearStallTimer();
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.aborter.abort();
    this.detach(true);
    callback(err);
  }

  private attach(opened: OpenedBody): void {
    const body = opened.body;
    this.current = body;
    this.toSkip = opened.skip;
    body.on('data', (chunk: Buffer) => this.onData(body, chunk));
    body.once('end', () => this.onEnd(body));
    body.once('error', (err: Error) => this.onBodyFailure(body, err));
    if (!this.wanted) body.pause();
    else this.armStallTimer();
  }

  /** Stops listening to the current body; destroys it (aborting its request) unless it ended. */
  private detach(destroy: boolean): void {
    const body = this.current;
    this.current = undefined;
    if (body === undefined) return;
    body.removeAllListeners('data');
    body.removeAllListeners('end');
    // Keep an error listener: a late error from a dropped body must not become uncaught.
    body.removeAllListeners('error');
    body.on('error', () => undefined);
    if (destroy) body.destroy();
  }

  private onData(body: Readable, data: Buffer): void {
    if (body !== this.current || this.destroyed) return;
    let chunk = data;
    if (this.toSkip > 0) {
      const drop = Math.min(this.toSkip, chunk.length);
      this.toSkip -= drop;
      chunk = chunk.subarray(drop);
      if (chunk.length === 0) {
        this.armStallTimer();
        return;
      }
    }
    const limit = this.limit;
    if (limit !== undefined && this.delivered + chunk.length > limit) {
      this.endAtLimit(chunk.subarray(0, limit - this.delivered));
      return;
    }
    if (this.expected >= 0 && this.delivered + chunk.length > this.expected) {
      this.fail(new RetryableError(`${this.options.what}: the registry sent more than the ${this.expected} bytes it announced`));
      return;
    }
    this.delivered += chunk.length;
    this.attemptsWithoutProgress = 0;
    if (this.push(chunk)) {
      this.armStallTimer();
    } else {
      this.wanted = false;
      this.clearStallTimer();
      body.pause();
    }
  }

  /** The last wanted bytes arrived in a body that goes on: they are delivered, the body dropped, the stream ended. */
  private endAtLimit(last: Buffer): void {
    this.clearStallTimer();
    this.detach(true);
    this.delivered += last.length;
    if (last.length > 0) this.push(last);
    this.push(null);
  }

  private onEnd(body: Readable): void {
    if (body !== this.current || this.destroyed) return;
    this.clearStallTimer();
    if (this.expected >= 0 && this.delivered < this.expected) {
      // A clean end before the announced size: the connection was cut between chunks.
      this.onBodyFailure(body, new Error(`connection closed after ${this.delivered} of ${this.expected} bytes`));
      return;
    }
    this.detach(false);
    this.push(null);
  }

  private onBodyFailure(body: Readable, err: Error): void {
    if (body !== this.current || this.destroyed) return;
    this.clearStallTimer();
    this.detach(true);
    // Its connections were closed by their owner (the registry pool): resuming would be refused too.
    if (err instanceof CancelledError) {
      this.destroy(err);
      return;
    }
    if (this.expected >= 0 && this.delivered === this.expected) {
      // Everything announced has arrived; only the connection's end was lost.
      this.push(null);
      return;
    }
    void this.resumeAfter(err);
  }

  private async resumeAfter(cause: Error): Promise<void> {
    this.reconnecting = true;
    let lastError: Error = cause;
    try {
      for (;;) {
        this.resumes++;
        this.attemptsWithoutProgress++;
        if (this.resumes > this.options.maxResumes || this.attemptsWithoutProgress > this.options.maxAttemptsWithoutProgress) {
          this.fail(new RetryableError(`${this.options.what}: download failed after ${this.resumes - 1} resumed attempts at byte ${this.delivered}: ${errorMessage(lastError)}`, { cause: lastError }));
          return;
        }
        this.options.onResume?.(this.delivered, errorMessage(lastError));
        await sleep(this.options.backoffMs(this.attemptsWithoutProgress), this.aborter.signal);
        if (this.destroyed) return;
        try {
          const opened = await this.options.reopen(this.delivered, this.aborter.signal);
          if (this.destroyed) {
            opened.body.destroy();
            return;
          }
          this.reconnecting = false;
          this.attach(opened);
          if (this.wanted) opened.body.resume();
          return;
        } catch (err) {
          if (this.destroyed) return;
          if (!isTransient(err)) {
            this.fail(err instanceof LayerpipeError ? err : new LayerpipeError(`${this.options.what}: ${errorMessage(err)}`, { cause: err }));
            return;
          }
          lastError = err instanceof Error ? err : new Error(String(err));
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  private fail(err: Error): void {
    this.clearStallTimer();
    this.detach(true);
    this.destroy(err);
  }

  private armStallTimer(): void {
    this.clearStallTimer();
    if (this.destroyed || !this.wanted) return;
    const body = this.current;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (body === undefined || body !== this.current || this.destroyed) return;
      this.onBodyFailure(body, new StallError(`no data for ${this.options.stallTimeoutMs} ms`));
    }, this.options.stallTimeoutMs);
  }

  private clearStallTimer(): void {
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }
}
