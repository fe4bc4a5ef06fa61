/**
 * A FIFO's write side (fifo.ts makes the FIFO): opening a FIFO for writing blocks until a reader
 * comes, so the write end is opened O_NONBLOCK and retried on ENXIO (no reader yet) with a short
 * backoff, on the event loop, until a reader comes or the open timeout passes. Once open, the
 * copy writes it as it writes a pipe sink (pipe-copy.ts); a net.Socket over the fd serves
 * anything else that writes `writable`. Only the 1.0 wire offers FIFOs, and only it imports this
 * file: it extends node:stream's Writable, which a 0.2.x proxy loads only once bytes move.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, unlinkSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { BrokenPipeError, CancelledError, LayerpipeError, systemCode } from '../../../protocol/errors';
import type { TransferBody } from '../body';
import type { CopyOptions } from '../copy';
import type { Sink } from '../sink';
import { PipeSink, widenPipe } from './fd-pipe';
import type { SessionFifos } from './fifo';

/** Retry delays while nobody has opened the FIFO: short at first (the client usually opens at once), then capped. */
const FIRST_RETRY_MS = 1;
const MAX_RETRY_MS = 25;
/** Non-blocking, and a symlink planted at the path is refused rather than followed. */
const WRITE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW;

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone (the directory was removed, or the FIFO was unlinked when opened).
  }
}

/**
 * The write side of a FIFO: waits (without blocking) for a reader, then writes through a
 * net.Socket on the fd. A chunk written before the reader came waits for it.
 */
class FifoWriter extends Writable {
  private socket: Socket | undefined;
  private waiting: { chunk: Buffer; callback: (err?: Error | null) => void } | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Who takes the fd instead of a socket (handOverFd); once handed over, the fd is theirs. */
  private handOver: ((fd: number) => void) | undefined;
  private handedOver = false;
  private delayMs = FIRST_RETRY_MS;
  private readonly deadline: number;

  constructor(
    private readonly fifoPath: string,
    private readonly what: string,
    private readonly timeoutMs: number,
  ) {
    super({ decodeStrings: true });
    this.deadline = Date.now() + timeoutMs;
    this.tryOpen();
  }

  private tryOpen(): void {
    this.retry = undefined;
    if (this.destroyed) return;
    let fd: number;
    try {
      fd = openSync(this.fifoPath, WRITE_FLAGS);
    } catch (err) {
      if (systemCode(err) !== 'ENXIO') {
        unlinkQuietly(this.fifoPath);
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      } else if (Date.now() >= this.deadline) {
        unlinkQuietly(this.fifoPath);
        // A reader that never came is a reader gone: the broken-pipe code, `error_code` "EPIPE".
        this.destroy(new BrokenPipeError(`nobody opened the FIFO ${this.fifoPath} (${this.what}) within ${Number((this.timeoutMs / 1000).toFixed(1))} s`));
      } else {
        this.retry = setTimeout(() => this.tryOpen(), this.delayMs);
        this.delayMs = Math.min(this.delayMs * 2, MAX_RETRY_MS);
      }
      return;
    }
    // Both ends are open: the name has served its purpose.
    unlinkQuietly(this.fifoPath);
    if (!fstatSync(fd).isFIFO()) {
      closeSync(fd);
      this.destroy(new LayerpipeError(`${this.fifoPath} was replaced by something that is not a FIFO`));
      return;
    }
    const handOver = this.handOver;
    if (handOver !== undefined) {
      this.handOver = undefined;
      this.handedOver = true;
      handOver(fd);
      return;
    }
    // node:net loads here, at a FIFO's first socket, not with every proxy.
    const { Socket: NetSocket } = require('node:net') as typeof import('node:net');
    this.socket = new NetSocket({ fd, readable: false, writable: true });
    this.socket.on('error', (err) => this.destroy(err));
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting !== undefined) this.socket.write(waiting.chunk, waiting.callback);
  }

  /** Asks for the fd itself once a reader opened the FIFO (no socket is made); false when writing has begun. */
  handOverFd(onOpen: (fd: number) => void): boolean {
    if (this.socket !== undefined || this.waiting !== undefined || this.handedOver || this.destroyed) return false;
    this.handOver = onOpen;
    return true;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.socket === undefined) this.waiting = { chunk, callback };
    else this.socket.write(chunk, callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.retry = undefined;
    this.handOver = undefined;
    if (this.socket !== undefined) {
      this.socket.destroy();
    } else if (!this.handedOver) {
      this.wakeBlockedReader();
      unlinkQuietly(this.fifoPath);
    }
    callback(err);
  }

  /**
   * A reader that opened the FIFO in blocking mode is stuck in open() until a writer comes:
   * opening and closing the write end lets it through, to read the end of data at once.
   */
  private wakeBlockedReader(): void {
    try {
      closeSync(openSync(this.fifoPath, WRITE_FLAGS));
    } catch {
      // ENXIO: nobody is waiting; ENOENT: already gone.
    }
  }
}

/** A FIFO as a sink: closing it before a reader came removes the FIFO and releases a reader stuck opening it. */
export class FifoSink implements Sink {
  readonly writable: FifoWriter;
  /** The open FIFO written as a pipe (directCopy). */
  private pipe: PipeSink | undefined;

  constructor(
    readonly path: string,
    private readonly what: string,
    openTimeoutMs: number,
  ) {
    this.writable = new FifoWriter(path, what, openTimeoutMs);
    // Failures are reported through the copy; an unheard 'error' must not crash the process.
    this.writable.on('error', () => undefined);
  }

  /** Once a reader opened the FIFO, the copy writes it as a pipe sink (pipe-copy.ts). */
  directCopy(body: TransferBody, options: CopyOptions): Promise<void> | undefined {
    const writer = this.writable;
    let onOpen: ((fd: number) => void) | undefined;
    // The FIFO cannot open before the executor below has set onOpen: opening is retried on timers.
    if (!writer.handOverFd((fd) => onOpen?.(fd))) return undefined;
    const { signal } = options;
    const opened = new Promise<PipeSink>((resolve, reject) => {
      const stopListening = (): void => {
        writer.off('error', onEnd).off('close', onEnd);
        signal.removeEventListener('abort', onAbort);
      };
      const onEnd = (err?: Error): void => {
        stopListening();
        reject(err ?? (signal.aborted ? signal.reason : new BrokenPipeError(this.what)));
      };
      const onAbort = (): void => onEnd(signal.reason instanceof Error ? signal.reason : new CancelledError(String(signal.reason)));
      writer.once('error', onEnd).once('close', onEnd);
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      onOpen = (fd) => {
        stopListening();
        // A FIFO starts with the kernel's 64 KiB, as a pipe does: the same buffer as a pipe sink's.
        widenPipe(fd);
        this.pipe = new PipeSink(fd, this.what);
        resolve(this.pipe);
      };
    });
    return opened.then((pipe) => pipe.directCopy(body, options) ?? Promise.reject(new BrokenPipeError(this.what)));
  }

  describeFailure(err: Error): Error {
    return systemCode(err) === 'EPIPE' ? new BrokenPipeError(this.what, { cause: err }) : err;
  }

  close(): void {
    this.pipe?.close();
    this.writable.destroy();
  }
}

/** A new FIFO of the session's for one transfer of `what`: the sink writing it, and the path the client opens. */
export function openFifoSink(fifos: SessionFifos, what: string): { sink: FifoSink; path: string } {
  const fifoPath = fifos.makeFifo();
  return { sink: new FifoSink(fifoPath, what, fifos.openTimeoutMs), path: fifoPath };
}
