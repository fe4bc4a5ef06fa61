/**
 * The copy into a pipe sink that writes the pipe itself (native addon, pipe-feed.c), so no
 * byte goes through write(2) from a JavaScript buffer:
 *
 * - a local file span is copied by the addon alone (FilePump, file-pump.c), JavaScript hearing
 *   only the end: spliced file -> pipe when raw (oci:, dir:, archives; the kernel moves page
 *   references, no byte is copied), pread into a ring, hashed there and vmspliced when verified;
 * - any other stream (a registry's response) has its chunks copied into the ring, hashed
 *   there and vmspliced: one copy, as write(2) made, and no per-chunk stream machinery.
 *
 * Same guarantees as copy.ts: every byte within the expected size is in the pipe before a
 * verification error is reported; a full pipe parks the copy on a uv_poll_t (no spinning,
 * memory bounded by the ring); the signal, the sink closing and EPIPE each settle it once.
 */
import { LayerpipeError } from '../../protocol/errors';
import { nodeStream } from '../node-stream';
import { native } from '../../protocol/seqpacket/native';
import type { TransferBody } from './body';
import type { CopyOptions } from './copy';
import { fileSpanOf, type FileSpan } from './file-span';
import type { PipeSink } from './sinks/fd-pipe';

function asError(err: unknown): Error {
  return err instanceof Error ? err : new LayerpipeError(String(err));
}

/** What both kinds of pipe copy share: settling once, on the signal, the sink closing, or an error. */
class PipeCopy {
  settled = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    readonly body: TransferBody,
    readonly sink: PipeSink,
    readonly options: CopyOptions,
    private readonly resolve: () => void,
    private readonly reject: (err: Error) => void,
  ) {
    const onAbort = (): void => this.settle(asError(options.signal.reason));
    options.signal.addEventListener('abort', onAbort, { once: true });
    this.cleanups.push(() => options.signal.removeEventListener('abort', onAbort));
    this.cleanups.push(sink.watchClose(() => this.settle(sink.describeFailure(Object.assign(new Error('closed'), { code: 'EPIPE' })))));
  }

  /** Runs at settling, in the order added. */
  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Runs a step that calls the addon: a thrown system error (EPIPE from the pipe, EIO from the file) settles the copy. */
  guarded(step: () => void): void {
    if (this.settled) return;
    try {
      step();
    } catch (err) {
      this.fail(err);
    }
  }

  fail(err: unknown): void {
    this.settle(this.sink.describeFailure(asError(err)));
  }

  moved(bytes: number): void {
    this.options.progress?.add(bytes);
  }

  settle(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.sink.stopWaiting();
    for (const cleanup of this.cleanups) cleanup();
    if (err === undefined) return this.resolve();
    this.reject(err);
  }
}

/** Copies `body` into a pipe sink the copy may write directly (sink.direct). */
export function copyToPipe(body: TransferBody, sink: PipeSink, options: CopyOptions): Promise<void> {
  const span = fileSpanOf(body.stream);
  return new Promise<void>((resolve, reject) => {
    if (options.signal.aborted) return reject(asError(options.signal.reason));
    if (sink.isClosed) return reject(sink.describeFailure(Object.assign(new Error('closed'), { code: 'EPIPE' })));
    const copy = new PipeCopy(body, sink, options, resolve, reject);
    copy.guarded(() => (span !== undefined ? copyFileSpan(copy, span) : copyStream(copy)));
  });
}

/** A span of a local file, copied by the addon alone (FilePump): spliced when raw, read, hashed and vmspliced when verified. */
function copyFileSpan(copy: PipeCopy, span: FileSpan): void {
  const { sink, body } = copy;
  const verifier = body.verifier;
  const room = verifier?.room ?? Infinity;
  // The stream owns the descriptor: release it however the copy ends (after the pump stopped).
  copy.onCleanup(() => {
    body.stream.on('error', () => undefined);
    body.stream.destroy();
  });
  const pump = new native.FilePump(
    span.fd, span.start, span.length ?? -1, sink.fd, verifier?.algorithm ?? null, Number.isFinite(room) ? room : -1,
    (err, result) => {
      copy.options.progress?.follow(undefined);
      if (err !== null || result === undefined) return copy.fail(err);
      copy.moved(result.bytes);
      if (result.eof && span.length !== undefined && result.bytes < span.length && span.truncated !== undefined) return copy.settle(span.truncated());
      if (verifier === undefined) return copy.settle();
      verifier.count(result.bytes);
      if (result.overflow) return copy.settle(verifier.overflowError());
      try {
        verifier.finishHashed(result.digest ?? '');
      } catch (verdict) {
        return copy.settle(asError(verdict));
      }
      copy.settle();
    },
  );
  copy.options.progress?.follow(() => pump.bytes());
  copy.onCleanup(() => {
    pump.cancel();
    copy.options.progress?.follow(undefined);
  });
}

/** Any stream: chunks copied into the ring (hashed there when verified), the source paused while the ring is full. */
function copyStream(copy: PipeCopy): void {
  const { body, options, sink } = copy;
  const { stream: source, verifier } = body;
  const ring = new native.PipeFeed(sink.fd, verifier?.algorithm ?? null);
  // Unmapping the ring is safe with bytes still in the pipe: the pipe keeps those pages.
  copy.onCleanup(() => ring.close());
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
  const whenWritable = (step: () => void): void => sink.whenWritable(() => copy.guarded(step));
  /** Hands the ring's last bytes to the pipe, then settles with the overflow or the verifier's verdict. */
  const finish = (): void => {
    if (!ring.flush(true)) return whenWritable(finish);
    if (pendingError !== undefined) return copy.settle(pendingError);
    try {
      verifier?.finishHashed(ring.digest());
    } catch (err) {
      return copy.settle(asError(err));
    }
    copy.settle();
  };
  const afterPush = (): void => {
    if (!pushQueued()) {
      source.pause();
      return whenWritable(afterPush);
    }
    if (pendingError !== undefined || sourceEnded) return finish();
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
    if (queued === undefined && pendingError === undefined) copy.guarded(finish);
  };

  source.on('data', onData);
  const stopWatching = nodeStream().finished(source, { writable: false }, onSourceFinished);
  copy.onCleanup(() => {
    source.off('data', onData);
    stopWatching();
    if (sourceEnded && pendingError === undefined) return;
    source.on('error', () => undefined); // a late error of a stream given up on must not go uncaught
    source.destroy();
  });
  source.resume();
}
