/**
 * Copies into client pipes, running in the background and independent of each other.
 *
 * Each copy writes through a non-blocking pipe wrapped in a net.Socket, so it is backpressured
 * by the event loop (no thread per copy, memory flat whatever the size). A FinishPipe-style
 * transfer keeps the write end open until finish() so the client must collect the result; a
 * raw transfer closes both its pipes by itself and reports failure on the error pipe.
 */
import { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Readable } from 'node:stream';
import type { RawBlobError } from '../../protocol/methods';
import { BrokenPipeError, InvalidArgumentError, errorMessage, wireErrorCode } from '../errors';
import type { BlobVerifier } from '../image/digest';
import { native } from '../native';

/**
 * Node allocates a fresh 64 KiB buffer for every socket read, and dead ones are freed only by a
 * GC, which V8 starts for them only after tens of MB of "external memory pressure": streaming
 * at hundreds of MB/s, that garbage was most of the proxy's peak RSS, and the full collections
 * it forced cost more CPU than this. A young-generation collection is cheap (a fraction of a
 * millisecond: only the few live objects are copied), so one is run every GC_EVERY_BYTES copied
 * across all transfers. `gc` comes from a fresh context once --expose-gc is set; the main
 * global is left alone. Without it (flag refused), nothing changes but memory.
 */
const GC_EVERY_BYTES = 4 * 1024 * 1024;
let bytesSinceGc = 0;
let collect: ((options: { type: 'minor' }) => void) | null | undefined = null;

function countCopied(bytes: number): void {
  bytesSinceGc += bytes;
  if (bytesSinceGc < GC_EVERY_BYTES) return;
  bytesSinceGc = 0;
  if (collect === null) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      collect = typeof gc === 'function' ? (gc as (options: { type: 'minor' }) => void) : undefined;
    } catch {
      collect = undefined;
    }
  }
  collect?.({ type: 'minor' });
}

/** The write end of a pipe as a backpressured sink. */
class PipeSink {
  private readonly socket: Socket;
  private failure: Error | undefined;
  constructor(fd: number, private readonly what: string) {
    native.setNonBlocking(fd, true);
    this.socket = new Socket({ fd, readable: false, writable: true });
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.noteFailure(err));
  }

  /** Keeps the first failure of the pipe, EPIPE as the wire's "broken pipe" error. */
  private noteFailure(err: NodeJS.ErrnoException): Error {
    this.failure ??= err.code === 'EPIPE' ? new BrokenPipeError(this.what, { cause: err }) : err;
    return this.failure;
  }

  /**
   * Writes every chunk of `source`, resolving once all bytes are in the kernel's pipe. With a
   * verifier, every byte within the expected size is written before a verification error.
   *
   * Event-driven rather than `for await`: one write per chunk and no promise per chunk; the
   * source is paused while the pipe is full (write() returned false) and resumed on 'drain'.
   */
  copyFrom(source: Readable, verifier?: BlobVerifier): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = this.socket;
      let inFlight = 0;
      let sourceEnded = false;
      let settled = false;
      let pendingError: Error | undefined;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        source.off('data', onData);
        source.off('end', onEnd);
        source.off('error', onSourceError);
        socket.off('drain', onDrain);
        socket.off('error', onSinkError);
        socket.off('close', onSinkClose);
        const failure = this.failure ?? err;
        if (failure !== undefined) {
          source.on('error', () => undefined); // a late error of a stream given up on must not go uncaught
          source.destroy();
          reject(failure);
        } else {
          resolve();
        }
      };
      const onWritten = (err?: Error | null): void => {
        inFlight--;
        // A write's callback can run before the socket's 'error' event: classify the error here too.
        if (err) settle(this.noteFailure(err));
        else if (inFlight === 0 && (sourceEnded || pendingError !== undefined)) complete();
      };
      const complete = (): void => {
        if (pendingError !== undefined) return settle(pendingError);
        try {
          verifier?.finish();
        } catch (err) {
          return settle(err as Error);
        }
        settle();
      };
      const onData = (chunk: Buffer): void => {
        if (settled || pendingError !== undefined) return;
        if (this.failure !== undefined) return settle(this.failure);
        let part = chunk;
        if (verifier !== undefined) {
          const taken = verifier.take(chunk);
          part = taken.part;
          if (taken.overflow) {
            // Deliver what fits, then report once it is in the pipe.
            pendingError = verifier.overflowError();
            source.pause();
          }
        }
        countCopied(part.length);
        inFlight++;
        // The overflow's report waits for this write's callback (never synchronous).
        if (!socket.write(part, onWritten) && pendingError === undefined) source.pause();
      };
      const onEnd = (): void => {
        sourceEnded = true;
        if (inFlight === 0) complete();
      };
      const onSourceError = (err: Error): void => settle(err);
      const onDrain = (): void => {
        if (!settled && pendingError === undefined) source.resume();
      };
      const onSinkError = (): void => settle(this.failure);
      const onSinkClose = (): void => settle(this.failure ?? new BrokenPipeError(this.what));
      source.on('data', onData);
      source.once('end', onEnd);
      source.once('error', onSourceError);
      socket.on('drain', onDrain);
      socket.once('error', onSinkError);
      socket.once('close', onSinkClose);
      source.resume();
    });
  }

  writeString(text: string): Promise<void> {
    return new Promise((resolve) => this.socket.write(text, () => resolve()));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Pipe buffer asked of the kernel: 16x the default, so a copy wakes up far less often per MiB. */
const PIPE_BUFFER_BYTES = 1024 * 1024;

/** A new pipe with a large buffer (best effort: a capped pipe-max-size just leaves the default). */
function newPipe(): [number, number] {
  const [readFd, writeFd] = native.pipe();
  try {
    native.setPipeSize(writeFd, PIPE_BUFFER_BYTES);
  } catch {
    // EPERM above /proc/sys/fs/pipe-max-size for unprivileged users: the default size works too.
  }
  return [readFd, writeFd];
}

interface PendingTransfer {
  readonly done: Promise<Error | undefined>;
  readonly sink: PipeSink;
}

/** What a method hands to the wire: the read ends to pass, and the pipe id if any. */
export interface PipeHandout {
  readonly pipeid: number;
  readonly fds: number[];
}

export class TransferTable {
  private readonly pending = new Map<number, PendingTransfer>();
  private nextPipeId = 1;

  /**
   * Starts copying `source` into a new pipe, checked by `verifier` if given. The copy's error,
   * if any, is kept for finish(); on error the write end closes at once, so a reader waiting
   * for more bytes sees EOF and goes on to call FinishPipe.
   */
  startPiped(source: Readable, what: string, verifier?: BlobVerifier): PipeHandout {
    const [readFd, writeFd] = newPipe();
    const sink = new PipeSink(writeFd, what);
    const done = sink.copyFrom(source, verifier).then(
      () => undefined,
      (err: unknown) => {
        sink.close();
        return err instanceof Error ? err : new Error(String(err));
      },
    );
    const pipeid = this.allocateId();
    this.pending.set(pipeid, { done, sink });
    return { pipeid, fds: [readFd] };
  }

  /** Waits for the copy, closes the write end, and throws the copy's error. */
  async finish(pipeid: number): Promise<void> {
    const transfer = this.pending.get(pipeid);
    if (transfer === undefined) throw new InvalidArgumentError(`finishpipe: no active pipe ${pipeid}`);
    this.pending.delete(pipeid);
    const err = await transfer.done;
    transfer.sink.close();
    if (err !== undefined) throw err;
  }

  /** Starts a copy into a data pipe with an error pipe beside it; no finish() needed. */
  startRaw(source: Readable, what: string): PipeHandout {
    const [dataRead, dataWrite] = newPipe();
    let errRead: number;
    let errWrite: number;
    try {
      [errRead, errWrite] = native.pipe();
    } catch (err) {
      native.close(dataRead);
      native.close(dataWrite);
      throw err;
    }
    const data = new PipeSink(dataWrite, what);
    const errors = new PipeSink(errWrite, `${what} error pipe`);
    void data.copyFrom(source).then(
      async () => {
        data.close();
        errors.close();
      },
      async (err: unknown) => {
        data.close();
        const report: RawBlobError = { code: wireErrorCode(err), message: errorMessage(err) };
        await errors.writeString(JSON.stringify(report));
        errors.close();
      },
    );
    return { pipeid: 0, fds: [dataRead, errRead] };
  }

  private allocateId(): number {
    // Opaque, non-zero, and never reused while pending.
    do {
      this.nextPipeId = this.nextPipeId >= 0xffffffff ? 1 : this.nextPipeId + 1;
    } while (this.pending.has(this.nextPipeId));
    return this.nextPipeId;
  }

  get activeCount(): number {
    return this.pending.size;
  }
}
