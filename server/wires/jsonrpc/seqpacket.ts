/**
 * Protocol 1.0 framing on a SOCK_SEQPACKET socket: one JSON-RPC message per packet, a pipe's
 * read end on the response packet of an `fd` transfer. The first packet, which detect.ts has
 * already read to choose the wire, is fed to the reader before any other.
 */
import { AbstractMessageReader, type DataCallback, type Disposable, type Message, type ResponseMessage } from 'vscode-jsonrpc/node';
import { systemCode } from '../../../protocol/errors';
import { native } from '../../../protocol/seqpacket/native';
import type { Packet, SeqpacketSocket } from '../../../protocol/seqpacket/socket';
import type { Logger } from '../../log';
import type { TransferHandouts } from './handouts';
import { admitBytes, refuseOversized, routeAdmission } from './message-gate';
import { HandoutMessageWriter, isResponse, tooLargeResponse } from './writer';

/**
 * Largest decoded chunk of one `transfer/data` on SEQPACKET. A packet must fit the sender's
 * socket buffer (net.core.wmem_default, 208 KiB on most systems): 128 KiB of bytes is about
 * 171 KiB of base64 and JSON.
 */
export const SEQPACKET_STREAM_CHUNK = 128 * 1024;

export class SeqpacketMessageReader extends AbstractMessageReader {
  constructor(
    private readonly socket: SeqpacketSocket,
    private readonly first: Packet | undefined,
    private readonly refuse: (response: ResponseMessage) => void,
    private readonly log: Logger,
  ) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    const routes = { message: callback, refused: this.refuse, debug: (text: string) => this.log.debug(text) };
    const onPacket = (packet: Packet): void => {
      for (const stray of packet.fds) native.close(stray); // clients send none
      routeAdmission(packet.truncated ? refuseOversized(undefined) : admitBytes(packet.data), routes);
    };
    const onEnd = (): void => this.fireClose();
    const onError = (err: Error): void => {
      this.fireError(err);
      this.fireClose();
    };
    if (this.first !== undefined) onPacket(this.first);
    this.socket.on('packet', onPacket);
    this.socket.on('end', onEnd);
    this.socket.on('error', onError);
    this.socket.resume();
    return {
      dispose: () => {
        this.socket.off('packet', onPacket);
        this.socket.off('end', onEnd);
        this.socket.off('error', onError);
      },
    };
  }

  /** Stops reading (the kernel buffers, then the client blocks) while too many requests are in flight. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

export class SeqpacketMessageWriter extends HandoutMessageWriter {
  constructor(private readonly socket: SeqpacketSocket, handouts: TransferHandouts) {
    super(handouts);
  }

  protected async send(message: Message, data: Buffer, fd: number | undefined): Promise<void> {
    try {
      await this.socket.send(data, fd === undefined ? [] : [fd]);
    } catch (err) {
      // Larger than the socket buffer: the client still gets an answer to its request.
      if (systemCode(err) !== 'EMSGSIZE' || !isResponse(message)) throw err;
      await this.socket.send(Buffer.from(JSON.stringify(tooLargeResponse(message, data.length, 'this socket carries in one packet'))));
      throw err;
    }
  }

  protected discard(fd: number | undefined): void {
    if (fd !== undefined) native.close(fd);
  }
}
