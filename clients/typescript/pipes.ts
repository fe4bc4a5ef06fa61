/**
 * Read ends of the proxy's pipes as Node streams.
 *
 * A net.Socket over the fd makes libuv read the pipe from its epoll loop, so many transfers
 * can stream at once without holding threads of the libuv pool (fs.createReadStream would).
 */
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
