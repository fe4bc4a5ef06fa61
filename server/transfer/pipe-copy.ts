/**
 * The copy into a pipe sink that writes the pipe itself (native addon, pipe-feed.c), so no
 * byte goes through write(2) from a JavaScript buffer:
 *
 * - a local file span with nothing to verify (raw blobs of oci:, dir:, archives) is spliced
 *   file -> pipe: the kernel moves page references, no byte is copied or seen by JavaScript;
 * - a local file span to verify is pread into the transfer's ring, hashed there and vmspliced;
 * - any other stream (a registry's response) has its chunks copied into the ring, hashed
 *   there and vmspliced: one copy, as write(2) made, and no per-chunk stream machinery.
 *
 * Same guarantees as copy.ts: every byte within the expected size is in the pipe before a
 * verification error is reported; a full pipe parks the copy on a Poller (no spinning, memory
 * bounded by the ring); the signal, the sink closing and EPIPE each settle it once.
 */
import { readSync } from 'node:fs';
import { finished } from 'node:stream';
import { LayerpipeError } from '../../protocol/errors';
import { native, type PipeFeed } from '../../protocol/seqpacket/native';
import type { BlobVerifier } from '../image/digest';
import type { TransferBody } from './body';
import type { CopyOptions } from './copy';
import { fileSpanOf, type FileSpan } from './file-span';
import type { PipeSink } from './sinks/fd-pipe';

/** Bytes one step moves before yielding the event loop to other transfers and requests. */
const STEP_BYTES = 8 * 1024 * 1024;

function asError(err: unknown): Error {
  return err instanceof Error ? err : new LayerpipeError(String(err));
}

/** What both kinds of pipe copy share: settling once, on the signal, the sink closing, or an error. */
class PipeCopy {
  settled = false;
  private readonly cleanups: (() => void)[] = [];
  readonly feed: PipeFeed | undefined;

  constructor(
    readonly body: TransferBody,
    readonly sink: PipeSink,
    readonly options: CopyOptions,
    hashing: boolean,
    private readonly resolve: () => void,
    private readonly reject: (err: Error) => void,
  ) {
    const verifier = body.verifier;
    this.feed = hashing ? new native.PipeFeed(sink.fd, verifier?.algorithm ?? null) : undefined;
    const onAbort = (): void => this.settle(asError(options.signal.reason));
    options.signal.addEventListener('abort', onAbort, { once: true });
    this.cleanups.push(() => options.signal.removeEventListener('abort', onAbort));
    this.cleanups.push(sink.watchClose(() => this.settle(sink.describeFailure(Object.assign(new Error('closed'), { code: 'EPIPE' })))));
  }

  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Runs a step that calls the addon: a thrown system error (EPIPE from the pipe, EIO from the file) settles the copy. */
  guarded(step: () => void): void {
    if (this.settled) return;
    try {
      step();
    } catch (err) {
      this.settle(this.sink.describeFailure(asError(err)));
    }
  }

  /** Waits for room in the pipe, then runs `step`. */
  whenWritable(step: () => void): void {
    this.sink.whenWritable(() => this.guarded(step));
  }

  moved(bytes: number): void {
    if (this.options.progress !== undefined) this.options.progress.bytes += bytes;
  }

  /** Hands the ring's last bytes to the pipe, then settles with `failure` or the verifier's verdict. */
  finish(failure: Error | undefined, verifier: BlobVerifier | undefined): void {
    if (this.settled) return;
    if (this.feed !== undefined && !this.feed.flush(true)) return this.whenWritable(() => this.finish(failure, verifier));
    if (failure !== undefined) return this.settle(failure);
    try {
      if (verifier !== undefined) verifier.finishHashed(this.feed!.digest());
    } catch (err) {
      return this.settle(asError(err));
    }
    this.settle();
  }

  settle(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.sink.stopWaiting();
    for (const cleanup of this.cleanups) cleanup();
    // Unmapping the ring is safe with bytes still in the pipe: the pipe keeps those pages.
    this.feed?.close();
    if (err === undefined) return this.resolve();
    this.reject(err);
  }
}

/** Copies `body` into a pipe sink the copy may write directly (sink.direct). */
export function copyToPipe(body: TransferBody, sink: PipeSink, options: CopyOptions): Promise<void> {
  const span = fileSpanOf(body.stream);
  return new Promise<void>((resolve, reject) => {
    if (options.signal.aborted) return reject(asError(options.signal.reason));
    const hashing = span === undefined || body.verifier !== undefined;
    let copy: PipeCopy;
    try {
      copy = new PipeCopy(body, sink, options, hashing, resolve, reject);
    } catch (err) {
      return reject(asError(err));
    }
    if (span !== undefined) copyFileSpan(copy, span);
    else copyStream(copy);
  });
}

/** One byte past the span's allowed end, if the file has one: a blob longer than expected. */
function hasByteAt(fd: number, position: number): boolean {
  return readSync(fd, Buffer.alloc(1), 0, 1, position) === 1;
}

/** A span of a local file: spliced when raw, pread into the ring and hashed when verified. */
function copyFileSpan(copy: PipeCopy, span: FileSpan): void {
  const { sink, feed, body } = copy;
  const verifier = body.verifier;
  let position = span.start;
  let remaining = span.length ?? Number.MAX_SAFE_INTEGER;
  // The stream owns the descriptor: release it however the copy ends (after the last read).
  copy.onCleanup(() => {
    body.stream.on('error', () => undefined);
    body.stream.destroy();
  });
  const ended = (): Error | undefined => (span.length !== undefined && remaining > 0 && span.truncated !== undefined ? span.truncated() : undefined);

  const step = (): void => {
    let budget = STEP_BYTES;
    while (!copy.settled) {
      if (budget <= 0) return void setImmediate(() => copy.guarded(step));
      if (feed === undefined) {
        if (remaining === 0) return copy.finish(undefined, undefined);
        const n = native.spliceFile(span.fd, position, remaining, sink.fd);
        if (n === 0) return copy.whenWritable(step);
        if (n < 0) return copy.finish(ended(), undefined);
        position += n;
        remaining -= n;
        budget -= n;
        copy.moved(n);
        continue;
      }
      const want = Math.min(remaining, verifier?.room ?? Infinity);
      if (want === 0) {
        // At the expected size: a byte more in the span is a blob longer than its digest says.
        const over = verifier !== undefined && remaining > 0 && hasByteAt(span.fd, position);
        return copy.finish(over ? verifier.overflowError() : undefined, verifier);
      }
      const n = feed.readFile(span.fd, position, want);
      if (n === 0) return copy.whenWritable(step);
      if (n < 0) return copy.finish(ended(), verifier);
      verifier?.count(n);
      position += n;
      remaining -= n;
      budget -= n;
      copy.moved(n);
    }
  };
  copy.guarded(step);
}

/** Any stream: chunks copied into the ring (hashed there when verified), the source paused while the ring is full. */
function copyStream(copy: PipeCopy): void {
  const { feed, body, options } = copy;
  const { stream: source, verifier } = body;
  const ring = feed!;
  /** Bytes of the last chunk the ring had no room for yet. */
  let queued: Buffer | undefined;
  let sourceEnded = false;
  /** A verification error waiting for the bytes before it to reach the pipe. */
  let pendingError: Error | undefined;

  const pushQueued = (): boolean => {
    while (queued !== undefined) {
      const n = ring.push(queued);
      if (n === queued.length) queued = undefined;
      else if (n > 0) queued = queued.subarray(n);
      else return false;
    }
    return true;
  };
  const afterPush = (): void => {
    if (!pushQueued()) {
      source.pause();
      return copy.whenWritable(afterPush);
    }
    if (pendingError !== undefined || sourceEnded) return copy.finish(pendingError, pendingError === undefined ? verifier : undefined);
    source.resume();
  };
  const onData = (chunk: Buffer): void => {
    if (copy.settled || pendingError !== undefined) return;
    let part = chunk;
    if (verifier !== undefined) {
      const taken = verifier.count(chunk.length);
      if (taken.overflow) {
        part = chunk.subarray(0, taken.length);
        pendingError = verifier.overflowError(); // delivered once every byte before it is in the pipe
        source.pause();
      }
    }
    options.guard?.count(part.length);
    copy.moved(part.length);
    queued = part;
    copy.guarded(afterPush);
  };
  const onSourceFinished = (err?: Error | null): void => {
    if (err) return copy.settle(asError(err));
    sourceEnded = true;
    if (queued === undefined && pendingError === undefined) copy.guarded(() => copy.finish(undefined, verifier));
  };

  source.on('data', onData);
  const stopWatching = finished(source, { writable: false }, onSourceFinished);
  copy.onCleanup(() => {
    source.off('data', onData);
    stopWatching();
    if (sourceEnded && pendingError === undefined) return;
    source.on('error', () => undefined); // a late error of a stream given up on must not go uncaught
    source.destroy();
  });
  source.resume();
}
