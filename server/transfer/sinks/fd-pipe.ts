/**
 * Pipe sinks: the consumer gets a pipe's read end (passed as a file descriptor), the copy
 * writes the other end. The write end is non-blocking, so a copy is backpressured by the event
 * loop (no thread per copy, memory flat whatever the size).
 */
import type { Socket } from 'node:net';
import { BrokenPipeError, InternalError } from '../../../protocol/errors';
import { native, type Poller } from '../../../protocol/seqpacket/native';
import type { TransferBody } from '../body';
import type { CopyOptions } from '../copy';
import { copyToPipe } from '../pipe-copy';
import type { Sink } from '../sink';

/**
 * Pipe buffer asked of the kernel: 8x the default, so a copy wakes up far less often per MiB.
 * A pipe copy's ring is twice this (pipe-feed.c), resident per transfer: 512 KiB rather than
 * 1 MiB took 4 MiB off four transfers at once, CPU per byte unchanged (cpu-per-byte-bench).
 */
export const PIPE_BUFFER_BYTES = 512 * 1024;

/**
 * The write end of a pipe as a sink. The pipe copy (pipe-copy.ts) writes the fd itself
 * (splice, vmsplice) and waits for room with a Poller; `writable`, a net.Socket over the fd,
 * is made only when something asks for it (the raw blob's error report, other copies).
 */
export class PipeSink implements Sink {
  private socket: Socket | undefined;
  private poller: Poller | undefined;
  private onReady: (() => void) | undefined;
  private readonly closeWatchers = new Set<() => void>();
  private closed = false;

  constructor(readonly fd: number, private readonly what: string) {
    native.setNonBlocking(fd, true);
  }

  get writable(): Socket {
    if (this.socket === undefined) {
      if (this.closed) throw new InternalError(`${this.what}: the pipe is closed`);
      if (this.poller !== undefined) throw new InternalError(`${this.what}: the pipe is already written directly`);
      // node:net (and streams with it) loads here, not with the proxy: a pipe copied directly never needs it.
      const { Socket: NetSocket } = require('node:net') as typeof import('node:net');
      this.socket = new NetSocket({ fd: this.fd, readable: false, writable: true });
      // Failures are reported through the copy; an unheard 'error' must not crash the process.
      this.socket.on('error', () => undefined);
    }
    return this.socket;
  }

  /** Whether the fd may be written directly: no socket wraps it. */
  get direct(): boolean {
    return this.socket === undefined;
  }

  /** The addon writes the pipe (pipe-copy.ts), unless a socket already wraps it. */
  directCopy(body: TransferBody, options: CopyOptions): Promise<void> | undefined {
    return this.direct ? copyToPipe(body, this, options) : undefined;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Calls `onReady` once, when the pipe has room or has failed (the next write then says why).
   * For direct writers only.
   */
  whenWritable(onReady: () => void): void {
    if (this.closed) throw new InternalError(`${this.what}: the pipe is closed`);
    this.poller ??= new native.Poller(this.fd, () => {
      this.poller?.stop();
      const ready = this.onReady;
      this.onReady = undefined;
      ready?.();
    });
    this.onReady = onReady;
    this.poller.start(false, true);
  }

  /** Forgets a pending whenWritable. */
  stopWaiting(): void {
    this.onReady = undefined;
    this.poller?.stop();
  }

  /** Calls `onClosed` if the sink is closed while a direct writer uses it; returns the unsubscribe. */
  watchClose(onClosed: () => void): () => void {
    this.closeWatchers.add(onClosed);
    return () => this.closeWatchers.delete(onClosed);
  }

  describeFailure(err: Error): Error {
    return (err as NodeJS.ErrnoException).code === 'EPIPE' ? new BrokenPipeError(this.what, { cause: err }) : err;
  }

  /** Writes a short text (the raw blob's error report) and resolves once it is in the pipe or failed. */
  writeText(text: string): Promise<void> {
    return new Promise((resolve) => this.writable.write(text, () => resolve()));
  }

  close(): void {
    if (this.closed) return;
    // A direct writer stops using the fd before it is closed (its number may be reused at once).
    for (const watcher of [...this.closeWatchers]) watcher();
    this.closed = true;
    this.onReady = undefined;
    this.poller?.close();
    if (this.socket !== undefined) this.socket.destroy();
    else native.close(this.fd);
  }
}

/** Gives a pipe or FIFO PIPE_BUFFER_BYTES of buffer (best effort: a capped pipe-max-size just leaves the default). */
export function widenPipe(fd: number): void {
  try {
    native.setPipeSize(fd, PIPE_BUFFER_BYTES);
  } catch {
    // EPERM above /proc/sys/fs/pipe-max-size for unprivileged users: the default size works too.
  }
}

function newPipe(): [number, number] {
  const [readFd, writeFd] = native.pipe();
  widenPipe(writeFd);
  return [readFd, writeFd];
}

/** A pipe for one transfer: the sink, and the read end to hand over (the caller closes it once sent). */
export function openPipeSink(what: string): { sink: PipeSink; readFd: number } {
  const [readFd, writeFd] = newPipe();
  return { sink: new PipeSink(writeFd, what), readFd };
}

/** A data pipe (the sink) with an error pipe beside it, as GetRawBlob hands out. */
export function openRawPipeSinks(what: string): { sink: PipeSink; errors: PipeSink; readFds: [number, number] } {
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
  return { sink: new PipeSink(dataWrite, what), errors: new PipeSink(errWrite, `${what} error pipe`), readFds: [dataRead, errRead] };
}
