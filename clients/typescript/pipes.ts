/**
 * Read ends of the proxy's pipes as Node streams, and closing the ones left unread.
 *
 * A net.Socket over the fd makes libuv read the pipe from its epoll loop, so many transfers
 * can stream at once without holding threads of the libuv pool (fs.createReadStream would).
 */
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import type { Readable } from 'node:stream';

/** Takes ownership of a pipe's read end: the stream closes it when it ends or is destroyed. */
export function pipeReadable(fd: number): Readable {
  return new net.Socket({ fd, readable: true, writable: false, allowHalfOpen: false });
}

/** Reads a stream to its end. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

/** Closes descriptors the client owns (received pipe ends it will not read); already-closed ones are ignored. */
export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // Already closed: nothing left to release.
    }
  }
}
