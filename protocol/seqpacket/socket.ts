/**
 * A SOCK_SEQPACKET socket on Node's event loop: ordered sends with descriptors attached,
 * packets delivered as events. Used by the server's wire and by the TypeScript client.
 */
import { EventEmitter } from 'node:events';
import { isNativeError, native, type Poller, type ReceivedPacket } from './native';

/** One packet received. The `packet` listener owns `fds` and must close them. */
export interface Packet {
  data: Buffer;
  fds: number[];
  /** Longer than maxPacketSize: `data` holds only its beginning. */
  truncated: boolean;
}

export interface SeqpacketSocketOptions {
  /** Receive buffer: longer packets arrive truncated. Default 256 KiB (more than the kernel's default socket buffer allows). */
  maxPacketSize?: number;
}

export const DEFAULT_MAX_PACKET_SIZE = 256 * 1024;

/** At most this many packets are read per readiness callback, so one busy peer cannot starve the loop. */
const PACKETS_PER_WAKEUP = 32;

interface QueuedSend {
  data: Buffer;
  fds: number[];
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Events: `packet` (Packet), `end` (the peer closed or reset the connection; no more packets),
 * `error` (a socket-level failure; the socket then closes), `close`.
 */
export interface SeqpacketSocket {
  on(event: 'packet', listener: (packet: Packet) => void): this;
  on(event: 'end' | 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  once(event: 'packet', listener: (packet: Packet) => void): this;
  once(event: 'end' | 'close', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
}

/** Errors that concern one packet only; after any other send error the socket is unusable. */
const PER_PACKET_ERRORS = new Set(['EMSGSIZE', 'ETOOMANYREFS']);

function closeQuietly(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      // Already closed or never valid: nothing left to release.
    }
  }
}

function socketClosedError(): Error {
  return Object.assign(new Error('seqpacket socket is closed'), { code: 'ERR_SOCKET_CLOSED' });
}

export class SeqpacketSocket extends EventEmitter {
  readonly fd: number;
  private readonly maxPacketSize: number;
  private readonly poller: Poller;
  private readonly queue: QueuedSend[] = [];
  private blockedOnWrite = false;
  private reading = false;
  private paused = false;
  private ended = false;
  private closed = false;
  /** Consecutive poll errors with nothing learned in between (guards against a busy loop). */
  private errorWakeups = 0;

  /**
   * Takes ownership of `fd` (a connected SOCK_SEQPACKET socket): close() closes it.
   * A number as second argument is the maxPacketSize.
   */
  constructor(fd: number, options: SeqpacketSocketOptions | number = {}) {
    super();
    this.fd = fd;
    this.maxPacketSize = (typeof options === 'number' ? options : options.maxPacketSize) ?? DEFAULT_MAX_PACKET_SIZE;
    // uv_poll_init sets O_NONBLOCK on the fd, and every call passes MSG_DONTWAIT anyway.
    // Throws (EBADF, EEXIST...) before taking ownership: the caller still owns fd then.
    this.poller = new native.Poller(fd, (status, readable, writable) => this.onReady(status, readable, writable));
    // Reading starts when someone listens for packets, so no packet (and no fd) is dropped unheard.
    super.on('newListener', (event: string | symbol) => {
      if (event === 'packet' && !this.reading) {
        this.reading = true;
        this.updateInterest();
      }
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Queues one packet; packets go out in call order. `fds` pass to the socket: they are closed
   * once sent, or when the send fails. Resolves when the kernel has accepted the packet. Do not
   * modify `data` until then.
   */
  send(data: Buffer, fds: readonly number[] = []): Promise<void> {
    const owned = [...fds];
    if (this.closed) {
      closeQuietly(owned);
      return Promise.reject(socketClosedError());
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ data, fds: owned, resolve, reject });
      if (!this.blockedOnWrite) this.flush();
    });
  }

  /** Stops reading packets (the kernel buffers them, and the peer blocks once it is full). */
  pause(): void {
    this.paused = true;
    this.updateInterest();
  }

  resume(): void {
    this.paused = false;
    this.updateInterest();
  }

  /** Whether this socket keeps the process alive while it waits (like a timer's ref). */
  ref(): void {
    if (!this.closed) this.poller.ref();
  }

  unref(): void {
    if (!this.closed) this.poller.unref();
  }

  /** Closes the socket; unsent packets are dropped (their promises reject, their fds are closed). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.close();
    closeQuietly([this.fd]);
    const err = socketClosedError();
    for (const item of this.queue.splice(0)) {
      closeQuietly(item.fds);
      item.reject(err);
    }
    this.emit('close');
  }

  private flush(): void {
    const wasBlocked = this.blockedOnWrite;
    this.blockedOnWrite = false;
    while (this.queue.length > 0 && !this.closed) {
      const item = this.queue[0];
      let sent: boolean;
      try {
        sent = native.sendPacket(this.fd, item.data, item.fds);
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        const failed = isNativeError(error) && PER_PACKET_ERRORS.has(error.code) ? this.queue.splice(0, 1) : this.queue.splice(0);
        for (const f of failed) {
          closeQuietly(f.fds);
          f.reject(error);
        }
        continue;
      }
      if (!sent) {
        this.blockedOnWrite = true;
        break;
      }
      this.queue.shift();
      closeQuietly(item.fds);
      item.resolve();
    }
    if (wasBlocked !== this.blockedOnWrite) this.updateInterest();
  }

  private updateInterest(): void {
    if (this.closed) return;
    const readable = this.reading && !this.paused && !this.ended;
    this.poller.start(readable, this.blockedOnWrite);
  }

  private onReady(status: number, readable: boolean, writable: boolean): void {
    if (this.closed) return;
    if (status < 0) {
      this.onPollError(status);
      return;
    }
    this.errorWakeups = 0;
    if (writable && this.blockedOnWrite) this.flush();
    if (readable) this.readPackets();
  }

  /**
   * libuv says UV_EBADF both for a bad fd and for POLLERR. ECONNRESET (the peer closed with
   * packets of ours unread) is not a failure: what it sent before closing is still queued,
   * followed by the end of stream. Anything else, or an error that keeps coming back, fails.
   */
  private onPollError(status: number): void {
    let pending: string | null;
    try {
      pending = native.takeSocketError(this.fd);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.errorWakeups++;
    if ((pending === null || pending === 'ECONNRESET') && this.errorWakeups <= 3) {
      this.updateInterest();
      return;
    }
    const code = pending ?? native.errorName(status);
    this.fail(Object.assign(new Error(`seqpacket socket: ${code}`), { code, syscall: 'uv_poll' }));
  }

  private readPackets(): void {
    for (let i = 0; i < PACKETS_PER_WAKEUP; i++) {
      if (this.closed || this.paused || this.ended || !this.reading) return;
      let received: ReceivedPacket | null;
      try {
        received = native.recvPacket(this.fd, this.maxPacketSize);
      } catch (err) {
        // The peer closed with packets of ours unread; what it sent is still queued, then EOF.
        if (isNativeError(err) && err.code === 'ECONNRESET') continue;
        this.fail(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (received === null) return;
      if (received.eof) {
        this.markEnded();
        return;
      }
      const packet: Packet = { data: received.data, fds: received.fds, truncated: received.truncated };
      if (this.listenerCount('packet') === 0) {
        closeQuietly(packet.fds);
      } else {
        this.emit('packet', packet);
      }
    }
  }

  private markEnded(): void {
    this.ended = true;
    this.updateInterest();
    this.emit('end');
  }

  /** A socket-level failure: reported once through 'error' (thrown if nobody listens, as Node does), then closed. */
  private fail(err: Error): void {
    try {
      this.emit('error', err);
    } finally {
      this.close();
    }
  }
}
