/**
 * Protocol 1.0 framing on a SOCK_SEQPACKET socket: one JSON-RPC message per packet, a pipe's
 * read end on the response packet of an `fd` transfer. The first packet, which detect.ts has
 * already read to choose the wire, is fed to the reader before any other.
 */
import type { DataCallback, Disposable, Message, ResponseMessage } from 'vscode-jsonrpc/node';
import { systemCode } from '../../../protocol/errors';
import { MAX_STREAM_CHUNK } from '../../../protocol/jsonrpc';
import { native } from '../../../protocol/seqpacket/native';
import type { Packet, SeqpacketSocket } from '../../../protocol/seqpacket/socket';
import type { Logger } from '../../log';
import type { TransferHandouts } from './handouts';
import { admitBytes, GatedMessageReader, refuseOversized, routeAdmission } from './message-gate';
import { HandoutMessageWriter, isResponse, tooLargeResponse } from './writer';

/**
 * Largest decoded chunk of one `transfer/data` on SEQPACKET when the send buffer stays at the
 * default (net.core.wmem_default, 208 KiB on most systems): a packet must fit it whole, and
 * 128 KiB of bytes is about 171 KiB of base64 and JSON.
 */
export const SEQPACKET_STREAM_CHUNK = 128 * 1024;

/**
 * Send buffer asked for (the kernel doubles it, and caps it at net.core.wmem_max): room for two
 * MAX_STREAM_CHUNK packets (about 350 KiB each), so the proxy encodes the next while the client
 * reads one; where wmem_max is the usual 208 KiB, one. Not more: a client that reads nothing
 * should find the server stalled after a few hundred small answers (flow control), not thousands.
 */
const SEQPACKET_SEND_BUFFER = 384 * 1024;

/** Room the kernel keeps in a send buffer besides the packet (its skb bookkeeping). */
const PACKET_OVERHEAD = 8 * 1024;

/** The encoded size of a `transfer/data` of `chunk` bytes, envelope included (an upper bound). */
function dataPacketBytes(chunk: number): number {
  return Math.ceil(chunk / 3) * 4 + 128;
}

/**
 * Widens the socket's send buffer and returns the largest chunk whose packet fits it: fewer,
 * larger messages cost both ends less per byte. Within MAX_STREAM_CHUNK; never below
 * SEQPACKET_STREAM_CHUNK, the size that fits the kernel's default buffer.
 */
export function widenSendBuffer(socket: SeqpacketSocket, log: Logger): number {
  let buffer: number;
  try {
    buffer = native.setSendBuffer(socket.fd, SEQPACKET_SEND_BUFFER);
  } catch (err) {
    log.debug(`the socket keeps its send buffer: ${(err as Error).message}`);
    return SEQPACKET_STREAM_CHUNK;
  }
  let chunk = MAX_STREAM_CHUNK;
  while (chunk > SEQPACKET_STREAM_CHUNK && dataPacketBytes(chunk) + PACKET_OVERHEAD > buffer) chunk -= 16 * 1024;
  return chunk;
}

export class SeqpacketMessageReader extends GatedMessageReader {
  constructor(
    private readonly socket: SeqpacketSocket,
    private readonly first: Packet | undefined,
    refuse: (response: ResponseMessage) => void,
    log: Logger,
  ) {
    super(refuse, (text) => log.debug(text));
  }

  listen(callback: DataCallback): Disposable {
    const routes = this.routes(callback);
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

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

export class SeqpacketMessageWriter extends HandoutMessageWriter {
  constructor(private readonly socket: SeqpacketSocket, handouts: TransferHandouts) {
    super(handouts, true); // socket.send resolves once the kernel has copied the packet
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
