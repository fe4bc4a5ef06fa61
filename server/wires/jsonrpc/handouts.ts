/**
 * What rides on, or must wait for, the response that names a transfer. vscode-jsonrpc's request
 * handlers never see the request id, so the wire keys by the result's `transfer` member: the
 * delivery registers the transfer when it starts, the writer takes the entry as it writes the
 * response (attaching the fd, for `fd` payloads) and reports when it went out, which lets a
 * stream's first `transfer/data` follow its response.
 */
import type { Message } from 'vscode-jsonrpc/node';
import { native } from '../../../protocol/seqpacket/native';

interface Handout {
  /** A read end to pass with the response (SEQPACKET `fd` payloads). */
  readonly fd: number | undefined;
  /** Called once the response is written (true) or could not be (false). */
  readonly onWritten: (sent: boolean) => void;
}

export class TransferHandouts {
  private readonly entries = new Map<number, Handout>();
  private closed = false;

  /** Registers a transfer about to be answered; `fd` is owned from here on (sent or closed). */
  add(transfer: number, handout: Handout): void {
    if (this.closed) {
      if (handout.fd !== undefined) native.close(handout.fd);
      handout.onWritten(false);
      return;
    }
    this.entries.set(transfer, handout);
  }

  /** The handout of the response `message`, if it names a registered transfer; the caller now owns it. */
  take(message: Message): Handout | undefined {
    const result = (message as { result?: unknown }).result;
    if (typeof result !== 'object' || result === null) return undefined;
    const transfer = (result as { transfer?: unknown }).transfer;
    if (typeof transfer !== 'number') return undefined;
    const handout = this.entries.get(transfer);
    this.entries.delete(transfer);
    return handout;
  }

  /** The connection is gone: fds never sent are closed, waiters told. */
  close(): void {
    this.closed = true;
    for (const handout of this.entries.values()) {
      if (handout.fd !== undefined) native.close(handout.fd);
      handout.onWritten(false);
    }
    this.entries.clear();
  }
}
