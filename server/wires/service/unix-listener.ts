/**
 * A listening SOCK_SEQPACKET unix socket on the event loop: bound here (file mode 0600, a stale
 * socket file of a dead service replaced, a live one refused) or inherited from systemd. Each
 * connection is handed over as a connected, non-blocking, close-on-exec fd.
 */
import { lstatSync, statSync, unlinkSync } from 'node:fs';
import { InvalidConfigError, systemCode } from '../../../protocol/errors';
import { native, type Poller } from '../../../protocol/seqpacket/native';
import type { Logger } from '../../log';

/** Connections the kernel queues before accept (the kernel caps it at somaxconn). */
const BACKLOG = 128;
/** At most this many accepts per readiness callback, so a connection storm cannot starve the loop. */
const ACCEPTS_PER_WAKEUP = 64;
/** Out of descriptors: accepting waits this long before trying again (the pending connection stays queued). */
const FD_EXHAUSTED_PAUSE_MS = 200;
const FD_EXHAUSTION = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** The socket file this process bound, to remove at close only if it is still that socket. */
interface BoundFile {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

export class UnixSeqpacketListener {
  private poller: Poller | undefined;
  private pauseTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly fd: number,
    /** For messages: the path, or "systemd socket (fd 3)". */
    readonly name: string,
    private readonly bound: BoundFile | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Binds `socketPath`. A socket file nobody listens on any more (ECONNREFUSED) is replaced;
   * one with a live listener, or anything that is not a socket, is refused.
   */
  static bind(socketPath: string, log: Logger): UnixSeqpacketListener {
    let fd: number;
    try {
      fd = native.listenSeqpacket(socketPath, BACKLOG);
    } catch (err) {
      if (systemCode(err) !== 'EADDRINUSE') throw new InvalidConfigError(`cannot listen on ${socketPath}: ${(err as Error).message}`, { cause: err });
      removeStaleSocket(socketPath);
      log.debug(`replaced the stale socket file ${socketPath}`);
      fd = native.listenSeqpacket(socketPath, BACKLOG);
    }
    const st = statSync(socketPath);
    return new UnixSeqpacketListener(fd, socketPath, { path: socketPath, dev: st.dev, ino: st.ino }, log);
  }

  /** A listening SEQPACKET socket this process inherited (systemd socket activation); its file is not ours to remove. */
  static adopt(fd: number, name: string, log: Logger): UnixSeqpacketListener {
    let type: string;
    let listening: boolean;
    try {
      type = native.socketType(fd);
      listening = native.isListeningSocket(fd);
    } catch (err) {
      throw new InvalidConfigError(`${name} is not a usable socket: ${(err as Error).message}`, { cause: err });
    }
    if (type !== 'seqpacket' || !listening) {
      throw new InvalidConfigError(`${name} must be a listening SOCK_SEQPACKET socket (ListenSequentialPacket= in the .socket unit), not a ${listening ? 'listening' : 'non-listening'} ${type} socket`);
    }
    native.setCloexec(fd, true);
    native.setNonBlocking(fd, true);
    return new UnixSeqpacketListener(fd, name, undefined, log);
  }

  /** Starts accepting; each connection fd passes to `onConnection`, which owns it from then on. */
  start(onConnection: (fd: number) => void): void {
    if (this.closed || this.poller !== undefined) return;
    this.poller = new native.Poller(this.fd, (status) => {
      if (status < 0) this.log.warn(`${this.name}: poll error ${native.errorName(status)}`);
      this.acceptPending(onConnection);
    });
    this.poller.start(true, false);
  }

  private acceptPending(onConnection: (fd: number) => void): void {
    for (let i = 0; i < ACCEPTS_PER_WAKEUP && !this.closed; i++) {
      let fd: number | null;
      try {
        fd = native.acceptSeqpacket(this.fd);
      } catch (err) {
        const code = systemCode(err) ?? 'unknown';
        this.log.warn(`${this.name}: accept failed: ${(err as Error).message}`);
        // Out of descriptors: the connection stays queued, and polling again at once would spin.
        if (FD_EXHAUSTION.has(code)) this.pauseAccepting(onConnection);
        return;
      }
      if (fd === null) return;
      onConnection(fd);
    }
  }

  private pauseAccepting(onConnection: (fd: number) => void): void {
    this.poller?.stop();
    this.pauseTimer = setTimeout(() => {
      this.pauseTimer = undefined;
      if (this.closed) return;
      this.poller?.start(true, false);
      this.acceptPending(onConnection);
    }, FD_EXHAUSTED_PAUSE_MS);
  }

  /** Stops accepting, closes the socket and removes the file this process bound. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pauseTimer !== undefined) clearTimeout(this.pauseTimer);
    this.poller?.close();
    native.close(this.fd);
    if (this.bound !== undefined) removeIfOurs(this.bound);
  }
}

/** Unlinks a socket file whose listener is gone; throws if it is alive or not a socket. */
function removeStaleSocket(socketPath: string): void {
  if (!lstatSync(socketPath).isSocket()) throw new InvalidConfigError(`cannot listen on ${socketPath}: it exists and is not a socket`);
  let probe: number;
  try {
    probe = native.connectSeqpacket(socketPath);
  } catch (err) {
    if (systemCode(err) === 'ECONNREFUSED') {
      unlinkSync(socketPath);
      return;
    }
    throw new InvalidConfigError(`cannot listen on ${socketPath}: ${(err as Error).message}`, { cause: err });
  }
  native.close(probe);
  throw new InvalidConfigError(`cannot listen on ${socketPath}: another service is listening there`);
}

function removeIfOurs(file: BoundFile): void {
  try {
    const st = lstatSync(file.path);
    if (st.dev === file.dev && st.ino === file.ino) unlinkSync(file.path);
  } catch {
    // Already removed by someone else: nothing to clean up.
  }
}
