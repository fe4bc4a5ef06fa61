/**
 * Read ends of the proxy's pipes as Node streams, and closing the ones left unread.
 *
 * A net.Socket over the fd makes libuv read the pipe from its epoll loop, so many transfers
 * can stream at once without holding threads of the libuv pool (fs.createReadStream would).
 */
import { closeSync } from 'node:fs';
import * as net from 'node:net';
import { Readable } from 'node:stream';

/** Pipe reads land in slabs of this size, each read in what is left of one, at least READ_MIN_BYTES. */
const SLAB_BYTES = 1024 * 1024;
const READ_MIN_BYTES = 256 * 1024;

/**
 * Where a pipe's reads land. One read(2) may take up to the rest of a 1 MiB slab, and the chunk
 * handed on is a view of the slab, not a copy. Large reads matter to the writer as much as to
 * the reader: the proxy is woken each time a read makes room in a full pipe, so Node's default
 * 64 KiB reads wake it up to sixteen times as often.
 */
class SlabReads {
  private slab: Buffer | undefined;
  private used = 0;
  /** Whether the buffer of the read in progress came from next() (Node asks once per read). */
  private lent = false;

  /** The buffer for the next read: the rest of the slab, or a new slab when too little is left. */
  readonly next = (): Buffer => {
    if (this.slab === undefined || this.slab.length - this.used < READ_MIN_BYTES) {
      this.slab = Buffer.allocUnsafe(SLAB_BYTES);
      this.used = 0;
    }
    this.lent = true;
    return this.slab.subarray(this.used);
  };

  /** The `n` bytes just read into `buf`, as a chunk that later reads never overwrite. */
  take(n: number, buf: Uint8Array): Buffer {
    if (!this.lent) return Buffer.from(buf.subarray(0, n)); // a buffer Node reused: copy, never lend it twice
    this.lent = false;
    this.used += n;
    return Buffer.from(buf.buffer, buf.byteOffset, n);
  }
}

/** Takes ownership of a pipe's read end: the stream closes it when it ends or is destroyed. */
export function pipeReadable(fd: number): Readable {
  const reads = new SlabReads();
  let socket: net.Socket | undefined;
  const readable = new Readable({
    // The pipe is the buffer: one read at a time waits here, so a slow reader still paces the writer.
    highWaterMark: 0,
    read: () => socket?.resume(),
    destroy: (err, callback) => {
      socket?.destroy();
      callback(err);
    },
  });
  // net.Socket takes `onread` for an fd too (its types list it for connect() only). Returning
  // false (the reader has enough queued) pauses the socket until read() asks again.
  const options: net.SocketConstructorOpts & { onread: net.OnReadOpts } = {
    fd, readable: true, writable: false, allowHalfOpen: false,
    onread: { buffer: reads.next, callback: (n, buf) => readable.push(reads.take(n, buf)) },
  };
  socket = new net.Socket(options);
  socket.once('end', () => readable.push(null));
  socket.once('error', (err) => readable.destroy(err));
  return readable;
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
