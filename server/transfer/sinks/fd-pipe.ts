/**
 * Pipe sinks: the consumer gets a pipe's read end (passed as a file descriptor), the copy
 * writes the other end. The write end is non-blocking and wrapped in a net.Socket, so a copy is
 * backpressured by the event loop (no thread per copy, memory flat whatever the size).
 * This module and the SEQPACKET code are the only ones that load the native addon.
 */
import { Socket } from 'node:net';
import { BrokenPipeError } from '../../../protocol/errors';
import { native } from '../../../protocol/seqpacket/native';
import type { Sink } from '../sink';

/** Pipe buffer asked of the kernel: 16x the default, so a copy wakes up far less often per MiB. */
const PIPE_BUFFER_BYTES = 1024 * 1024;

/** The write end of a pipe as a sink. */
export class PipeSink implements Sink {
  readonly writable: Socket;
  private closed = false;

  constructor(fd: number, private readonly what: string) {
    native.setNonBlocking(fd, true);
    this.writable = new Socket({ fd, readable: false, writable: true });
    // Failures are reported through the copy; an unheard 'error' must not crash the process.
    this.writable.on('error', () => undefined);
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
    this.closed = true;
    this.writable.destroy();
  }
}

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
