/**
 * What ImageProxy needs from a transport: send a request packet, receive reply packets in
 * order with the descriptors riding on them, close, and hear when the peer has gone.
 *
 * The skopeo wire runs over a SOCK_SEQPACKET socket (seqpacket-channel.ts, with spawn.ts
 * starting the proxy process). Keeping ImageProxy behind this interface lets another
 * transport (a WebSocket, stdio framing) be added without touching it.
 */

/** One reply packet. Whoever receives it owns `fds` and must close them. */
export interface ChannelPacket {
  data: Buffer;
  /** Descriptors that came with the packet, in order (pipe read ends on this wire). */
  fds: number[];
  /** Longer than the channel's maxPacketSize: `data` holds only its beginning. */
  truncated: boolean;
}

export interface ChannelHandlers {
  /** A reply packet, in the order the peer sent them. */
  packet(packet: ChannelPacket): void;
  /**
   * The peer can send nothing more: it closed its end, exited, or the channel failed
   * (`failure` then says how). Called at most once, and not after close().
   */
  gone(failure?: Error): void;
}

/**
 * `send` rejects with this when only that packet was refused (too large, too many fds): the
 * channel still works and no reply will come for it. Any other rejection means it is broken.
 */
export class PacketRefusedError extends Error {
  override name = 'PacketRefusedError';
}

/** What can be learnt about a peer that is a local process; a remote peer has none of it. */
export interface PeerProcess {
  readonly command: string;
  /** Its arguments after the program name. */
  readonly args: readonly string[];
  readonly pid: number | undefined;
  /** The tail of what it wrote on stderr. */
  readonly stderr: string;
  /** Its exit status once it has exited; null while it runs or when a signal ended it. */
  readonly exitCode: number | null;
  readonly exitSignal: NodeJS.Signals | null;
  /** Waits for it to exit (or to have failed to start); its exit status. */
  waitExit(): Promise<number | null>;
}

export interface Channel {
  /** Who is at the other end, for error messages: a program name, an address. */
  readonly peerName: string;
  /** Longest reply packet accepted; longer ones arrive truncated. */
  readonly maxPacketSize: number;
  /** The peer's process when it is one this side started, else null. */
  readonly process: PeerProcess | null;
  /** Starts delivering packets and the end of the stream to `handlers`. Call once. */
  start(handlers: ChannelHandlers): void;
  /**
   * Queues one request packet; packets go out in call order. The channel takes `fds` and
   * closes them once sent or refused. Resolves when the packet has left.
   */
  send(data: Buffer, fds?: readonly number[]): Promise<void>;
  /** Why the peer went away, for error messages (a process's exit status and stderr). */
  describeGone(): Promise<string>;
  /** Closes our end; packets not yet delivered are dropped and their fds closed. Idempotent. */
  close(): void;
  /** After close(): waits until the peer has finished (a process that lingers is killed). */
  waitClosed(): Promise<void>;
}
