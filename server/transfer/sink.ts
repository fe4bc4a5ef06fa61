/** Where a transfer's bytes go: the consumer's end of a pipe, a FIFO, or in-band messages. */
import type { Writable } from 'node:stream';
import type { TransferBody } from './body';
import type { CopyOptions } from './copy';

export interface Sink {
  /** Backpressured: write() returning false pauses the copy until 'drain'. */
  readonly writable: Writable;
  /** The error to report for a failure of `writable` (EPIPE becomes "broken pipe"). */
  describeFailure(err: Error): Error;
  /**
   * Copies `body` in by the sink's own means (same guarantees as copyBody), or undefined to
   * leave it to copyBody's stream loop through `writable`.
   */
  directCopy?(body: TransferBody, options: CopyOptions): Promise<void> | undefined;
  /** Ends the consumer's view: a reader sees end of data. Idempotent. */
  close(): void;
}
