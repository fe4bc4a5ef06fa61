/**
 * The 1.0 wire's writers share this: the response naming a transfer takes its handout (an fd to
 * attach, a stream to start once it is out), no message over MAX_MESSAGE_SIZE_1 leaves (a response
 * that would is replaced by an error response saying so), and flushed() tells when everything
 * queued so far has been written (Shutdown answers before the wire stops).
 */
import { AbstractMessageWriter, type Message, type MessageWriter, type ResponseMessage } from 'vscode-jsonrpc/node';
import { MAX_MESSAGE_SIZE_1, RpcErrorCodes } from '../../../protocol/jsonrpc';
import type { TransferHandouts } from './handouts';

export function isResponse(message: Message): message is ResponseMessage {
  const m = message as { method?: unknown; id?: unknown };
  return m.method === undefined && m.id !== undefined;
}

/** The error response sent instead of a response too large to travel. */
export function tooLargeResponse(message: ResponseMessage, length: number, limit: string): ResponseMessage {
  return {
    jsonrpc: '2.0',
    id: message.id,
    error: { code: RpcErrorCodes.InternalError, message: `the response (${length} bytes) is larger than ${limit}`, data: { error_code: 'other' } },
  };
}

export abstract class HandoutMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private last: Promise<void> = Promise.resolve();

  constructor(private readonly handouts: TransferHandouts) {
    super();
  }

  write(message: Message): Promise<void> {
    const handout = isResponse(message) ? this.handouts.take(message) : undefined;
    let out = message;
    let data = Buffer.from(JSON.stringify(message), 'utf8');
    let fd = handout?.fd;
    if (data.length > MAX_MESSAGE_SIZE_1 && isResponse(message)) {
      out = tooLargeResponse(message, data.length, `the ${MAX_MESSAGE_SIZE_1}-byte message limit`);
      data = Buffer.from(JSON.stringify(out));
      this.discard(fd);
      fd = undefined;
    }
    const writing = this.send(out, data, fd).then(
      () => handout?.onWritten(true),
      (err: unknown) => {
        handout?.onWritten(false);
        this.fireError(err, message, 1);
        throw err;
      },
    );
    this.last = writing.catch(() => undefined);
    return writing;
  }

  /** Resolves once every message written so far has gone out (or failed). */
  flushed(): Promise<void> {
    return this.last;
  }

  end(): void {
    // Nothing buffered here: each message is handed to the transport as it is written.
  }

  /** Sends `message`, serialised as `data` (with `fd`, which it then owns); messages leave in call order. */
  protected abstract send(message: Message, data: Buffer, fd: number | undefined): Promise<void>;

  /** Closes an fd that will not be sent. */
  protected abstract discard(fd: number | undefined): void;
}
