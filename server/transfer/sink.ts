/** Where a transfer's bytes go: the consumer's end of a pipe, a FIFO, or in-band messages. */
import type { Writable } from 'node:stream';

export interface Sink {
  /** Backpressured: write() returning false pauses the copy until 'drain'. */
  readonly writable: Writable;
  /** The error to report for a failure of `writable` (EPIPE becomes "broken pipe"). */
  describeFailure(err: Error): Error;
  /** Ends the consumer's view: a reader sees end of data. Idempotent. */
  close(): void;
}
