/**
 * vscode-jsonrpc's reader and writer over a packet Channel (a SOCK_SEQPACKET socket): one
 * JSON-RPC message per packet, a `transfer/data` going to the TransferDataRoute unparsed. A
 * response that starts an `fd` transfer carries the pipe's read end on its packet; vscode-jsonrpc hands results over without their packets, so the reader
 * keeps such fds by the result's `transfer` id until the proxy object claims them.
 */
import { AbstractMessageReader, AbstractMessageWriter, type DataCallback, type Disposable, type Message } from 'vscode-jsonrpc';
import type { Channel, ChannelPacket } from '../channel';
import { closeFds } from '../pipes';
import type { TransferDataRoute } from './transfer-data';

/** Read ends received on transfer responses, by transfer id. */
export class ReceivedFds {
  private readonly byTransfer = new Map<number, number>();
  private closed = false;

  put(transfer: number, fd: number): void {
    if (this.closed) return closeFds([fd]);
    const previous = this.byTransfer.get(transfer);
    if (previous !== undefined) closeFds([previous]);
    this.byTransfer.set(transfer, fd);
  }

  /** The fd that came with `transfer`'s response; the caller owns it from now on. */
  take(transfer: number): number | undefined {
    const fd = this.byTransfer.get(transfer);
    this.byTransfer.delete(transfer);
    return fd;
  }

  closeAll(): void {
    this.closed = true;
    closeFds([...this.byTransfer.values()]);
    this.byTransfer.clear();
  }
}

function transferOf(message: unknown): number | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const result = (message as { result?: unknown }).result;
  if (typeof result !== 'object' || result === null) return undefined;
  const transfer = (result as { transfer?: unknown }).transfer;
  return typeof transfer === 'number' ? transfer : undefined;
}

export class PacketMessageReader extends AbstractMessageReader {
  private callback: DataCallback | undefined;
  private readonly early: Message[] = [];
  private closed = false;

  constructor(channel: Channel, private readonly fds: ReceivedFds, private readonly transferData: TransferDataRoute) {
    super();
    channel.start({
      packet: (packet) => this.onPacket(packet),
      gone: (failure) => {
        if (this.closed) return;
        this.closed = true;
        if (failure !== undefined) this.fireError(failure);
        this.fireClose();
      },
    });
  }

  /** The peer is gone though the socket has not said so yet (a write failed): reports the close once. */
  lost(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.fireError(err);
    this.fireClose();
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    for (const message of this.early.splice(0)) callback(message);
    return { dispose: () => { this.callback = undefined; } };
  }

  private onPacket(packet: ChannelPacket): void {
    let message: Message;
    try {
      if (packet.truncated) throw new Error(`a message from the proxy is larger than ${packet.data.length} bytes`);
      if (packet.fds.length === 0 && this.transferData.route(packet.data)) return;
      message = JSON.parse(packet.data.toString('utf8')) as Message;
    } catch (err) {
      closeFds(packet.fds);
      this.fireError(err);
      return;
    }
    if (packet.fds.length > 0) {
      const transfer = transferOf(message);
      if (transfer === undefined || packet.fds.length !== 1) closeFds(packet.fds);
      else this.fds.put(transfer, packet.fds[0]!);
    }
    if (this.callback === undefined) this.early.push(message);
    else this.callback(message);
  }
}

export class PacketMessageWriter extends AbstractMessageWriter {
  private errorCount = 0;

  /** `lost` hears that the peer can no longer be written to (the reader then reports the close). */
  constructor(private readonly channel: Channel, private readonly lost: (err: unknown) => void) {
    super();
  }

  async write(message: Message): Promise<void> {
    try {
      await this.channel.send(Buffer.from(JSON.stringify(message), 'utf8'));
    } catch (err) {
      this.fireError(err, message, ++this.errorCount);
      this.lost(err);
      throw err;
    }
  }

  end(): void {
    this.channel.close();
  }
}
