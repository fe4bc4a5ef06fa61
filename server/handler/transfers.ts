/**
 * Copies into client pipes, running in the background and independent of each other.
 *
 * Each copy writes through a non-blocking pipe wrapped in a net.Socket, so it is backpressured
 * by the event loop (no thread per copy, memory flat whatever the size). A FinishPipe-style
 * transfer keeps the write end open until finish() so the client must collect the result; a
 * raw transfer closes both its pipes by itself and reports failure on the error pipe.
 */
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { RawBlobError } from '../../protocol/methods';
import { BrokenPipeError, InvalidArgumentError, errorMessage, wireErrorCode } from '../errors';
import type { BlobVerifier } from '../image/digest';
import { native } from '../native';

/** The write end of a pipe as a backpressured sink. */
class PipeSink {
  private readonly socket: Socket;
  private failure: Error | undefined;
  constructor(fd: number, private readonly what: string) {
    native.setNonBlocking(fd, true);
    this.socket = new Socket({ fd, readable: false, writable: true });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.failure ??= err.code === 'EPIPE' ? new BrokenPipeError(this.what, { cause: err }) : err;
    });
  }

  /**
   * Writes every chunk of `source`, resolving once all bytes are in the kernel's pipe. With a
   * verifier, every byte within the expected size is written before a verification error.
   */
  async copyFrom(source: Readable, verifier?: BlobVerifier): Promise<void> {
    let last: Promise<void> = Promise.resolve();
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (this.failure !== undefined) throw this.failure;
        const { part, overflow } = verifier?.take(chunk) ?? { part: chunk, overflow: false };
        last = new Promise<void>((resolve, reject) => {
          this.socket.write(part, (err) => (err ? reject(this.failure ?? err) : resolve()));
        });
        last.catch(() => {}); // observed below or superseded by this.failure
        if (overflow) {
          await last;
          throw verifier!.overflowError();
        }
        if (this.socket.writableNeedDrain) await this.drained();
      }
      await last;
      if (this.failure !== undefined) throw this.failure;
      verifier?.finish();
    } catch (err) {
      source.destroy();
      throw this.failure ?? err;
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onDrain = () => { cleanup(); resolve(); };
      const onError = () => { cleanup(); reject(this.failure); };
      const onClose = () => { cleanup(); reject(this.failure ?? new BrokenPipeError(this.what)); };
      const cleanup = () => {
        this.socket.off('drain', onDrain);
        this.socket.off('error', onError);
        this.socket.off('close', onClose);
      };
      this.socket.on('drain', onDrain);
      this.socket.on('error', onError);
      this.socket.on('close', onClose);
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
