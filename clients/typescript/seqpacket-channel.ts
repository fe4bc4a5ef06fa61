/**
 * The Channel of the skopeo wire: one end of a SOCK_SEQPACKET socketpair, pipe read ends
 * arriving beside replies as SCM_RIGHTS. The only module of the client that loads the native
 * addon (through protocol/seqpacket, which the server shares).
 */
import { native } from '../../protocol/seqpacket/native';
import { DEFAULT_MAX_PACKET_SIZE, SeqpacketSocket } from '../../protocol/seqpacket/socket';
import { PacketRefusedError, type Channel, type ChannelHandlers, type PeerProcess } from './channel';

/** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): two connected ends, both owned by the caller. */
export function seqpacketPair(): [number, number] {
  return native.seqpacketPair();
}

/** A SOCK_SEQPACKET connection to a listening unix socket (a `layerpipe serve --listen unix:PATH` service). */
export function connectSeqpacket(socketPath: string): number {
  return native.connectSeqpacket(socketPath);
}

/** The process at the other end of the socket, when this side started it (spawn.ts). */
export interface SocketPeer {
  readonly process: PeerProcess;
  /** Its exit status and stderr, after waiting briefly for it to exit. */
  describeExit(): Promise<string>;
  /** Waits for it to exit once the socket is closed, killing it if it takes too long. */
  reap(): Promise<void>;
}

export interface SeqpacketChannelOptions {
  /** For error messages; default: the peer's command, else "peer". */
  peerName?: string;
  /** Receive buffer; longer packets arrive truncated. Default 256 KiB. */
  maxPacketSize?: number;
  peer?: SocketPeer;
}

/** Send errors that refuse one packet only; after any other the socket is unusable. */
const PER_PACKET_ERRORS = new Set(['EMSGSIZE', 'ETOOMANYREFS']);

export class SeqpacketChannel implements Channel {
  readonly peerName: string;
  readonly maxPacketSize: number;
  readonly process: PeerProcess | null;
  private readonly socket: SeqpacketSocket;
  private readonly peer: SocketPeer | null;
  private handlers: ChannelHandlers | null = null;
  /** The end of the stream, held until start() when it comes before. */
  private early: { failure?: Error } | null = null;
  private ended = false;

  /** Takes ownership of `fd`, a connected SOCK_SEQPACKET socket: close() closes it. */
  constructor(fd: number, options: SeqpacketChannelOptions = {}) {
    this.peer = options.peer ?? null;
    this.process = this.peer?.process ?? null;
    this.peerName = options.peerName ?? this.process?.command ?? 'peer';
    this.maxPacketSize = options.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
    this.socket = new SeqpacketSocket(fd, { maxPacketSize: this.maxPacketSize });
    // Listening from the start: an 'error' nobody hears would be thrown.
    this.socket.on('end', () => this.onGone());
    this.socket.on('error', (err) => this.onGone(err));
  }

  start(handlers: ChannelHandlers): void {
    if (this.handlers !== null) throw new Error('SeqpacketChannel.start() called twice');
    this.handlers = handlers;
    // Reading begins with the first 'packet' listener, so no packet (or fd) goes unheard.
    this.socket.on('packet', (packet) => handlers.packet(packet));
    if (this.early !== null) handlers.gone(this.early.failure);
  }

  async send(data: Buffer, fds: readonly number[] = []): Promise<void> {
    try {
      await this.socket.send(data, fds);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && PER_PACKET_ERRORS.has(code)) {
        throw new PacketRefusedError(`${(err as Error).message} (${code})`, { cause: err });
      }
      throw err;
    }
  }

  describeGone(): Promise<string> {
    return this.peer?.describeExit() ?? Promise.resolve(`${this.peerName} closed its socket`);
  }

  close(): void {
    this.ended = true;
    this.socket.close();
  }

  async waitClosed(): Promise<void> {
    await this.peer?.reap();
  }

  private onGone(failure?: Error): void {
    if (this.ended) return;
    this.ended = true;
    if (this.handlers === null) this.early = failure === undefined ? {} : { failure };
    else this.handlers.gone(failure);
  }
}
