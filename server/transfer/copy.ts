/**
 * The copy loop: a body's stream into a sink, verified on the way. A sink that copies by
 * itself (a pipe sink, through pipe-copy.ts and the addon) is left to do so; this loop serves
 * the others. (Kept free of the addon: the service and image model load without it.)
 *
 * It settles on every way a copy can end, so nothing waits for an event that never comes:
 * the source ending, failing or closing before its end (stream.finished semantics; a file
 * closed under a read stream emits only 'close'), the sink failing or closing, and the
 * transfer's signal aborting (its image closed, its session ended, the client cancelled).
 *
 * Event-driven rather than `for await`: one write per chunk and no promise per chunk; the
 * source is paused while the sink is full and resumed on 'drain'. With a verifier, every byte
 * within the expected size reaches the sink before a verification error is reported.
 */
import { nodeStream } from '../node-stream';
import { LayerpipeError } from '../../protocol/errors';
import type { TransferBody } from './body';
import type { MemoryGuard } from './memory-guard';
import type { Sink } from './sink';

/** Bytes handed to a sink so far, for progress reports: counted by the copy, or read live from a native copy. */
export class TransferProgress {
  private counted = 0;
  private live: (() => number) | undefined;

  get bytes(): number {
    return this.counted + (this.live?.() ?? 0);
  }

  add(bytes: number): void {
    this.counted += bytes;
  }

  /** Reads `live` until it is replaced (undefined: stop reading, its count added by then). */
  follow(live: (() => number) | undefined): void {
    this.live = live;
  }
}

export interface CopyOptions {
  readonly signal: AbortSignal;
  readonly guard: MemoryGuard | undefined;
  readonly progress?: TransferProgress;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new LayerpipeError(String(err));
}

export function copyBody(body: TransferBody, sink: Sink, options: CopyOptions): Promise<void> {
  // A sink that fills itself (a pipe written by the addon: pipe-copy.ts).
  const direct = sink.directCopy?.(body, options);
  if (direct !== undefined) return direct;
  const { stream: source, verifier } = body;
  const { signal, guard, progress } = options;
  const out = sink.writable;
  return new Promise<void>((resolve, reject) => {
    let inFlight = 0;
    let sourceEnded = false;
    let settled = false;
    let sinkFailure: Error | undefined;
    /** A verification error waiting for the bytes before it to be written. */
    let pendingError: Error | undefined;
    let stopWatchingSource: () => void = () => undefined;

    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      out.off('drain', onDrain);
      out.off('error', onSinkError);
      out.off('close', onSinkClose);
      signal.removeEventListener('abort', onAbort);
      stopWatchingSource();
      const failure = sinkFailure ?? err;
      if (failure === undefined) return resolve();
      source.on('error', () => undefined); // a late error of a stream given up on must not go uncaught
      source.destroy();
      reject(failure);
    };
    const noteSinkFailure = (err: Error): Error => {
      sinkFailure ??= sink.describeFailure(err);
      return sinkFailure;
    };
    const complete = (): void => {
      if (pendingError !== undefined) return settle(pendingError);
      try {
        verifier?.finish();
      } catch (err) {
        return settle(asError(err));
      }
      settle();
    };
    const onWritten = (err?: Error | null): void => {
      inFlight--;
      // A write's callback can run before the sink's 'error' event: classify the error here too.
      if (err) settle(noteSinkFailure(err));
      else if (inFlight === 0 && (sourceEnded || pendingError !== undefined)) complete();
    };
    const onData = (chunk: Buffer): void => {
      if (settled || pendingError !== undefined) return;
      if (sinkFailure !== undefined) return settle(sinkFailure);
      let part = chunk;
      if (verifier !== undefined) {
        const taken = verifier.take(chunk);
        part = taken.part;
        if (taken.overflow) {
          // Deliver what fits, then report once it is written.
          pendingError = verifier.overflowError();
          source.pause();
        }
      }
      guard?.count(part.length);
      progress?.add(part.length);
      inFlight++;
      // The overflow's report waits for this write's callback (never synchronous).
      if (!out.write(part, onWritten) && pendingError === undefined) source.pause();
    };
    const onSourceFinished = (err?: Error | null): void => {
      if (err) return settle(asError(err));
      sourceEnded = true;
      if (inFlight === 0) complete();
    };
    const onDrain = (): void => {
      if (!settled && pendingError === undefined) source.resume();
    };
    const onSinkError = (err: Error): void => settle(noteSinkFailure(err));
    const onSinkClose = (): void => settle(sinkFailure ?? sink.describeFailure(Object.assign(new Error('closed'), { code: 'EPIPE' })));
    const onAbort = (): void => settle(asError(signal.reason));

    if (signal.aborted) return onAbort();
    source.on('data', onData);
    stopWatchingSource = nodeStream().finished(source, { writable: false }, onSourceFinished);
    out.on('drain', onDrain);
    out.once('error', onSinkError);
    out.once('close', onSinkClose);
    signal.addEventListener('abort', onAbort, { once: true });
    source.resume();
  });
}
