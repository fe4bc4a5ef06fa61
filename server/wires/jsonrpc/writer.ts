/**
 * The 1.0 wire's writers share this: the response naming a transfer takes its handout (an fd to
 * attach, a stream to start once it is out), no message over MAX_MESSAGE_SIZE_1 leaves (a response
 * that would is replaced by an error response saying so), and flushed() tells when everything
 * queued so far has been written (Shutdown answers before the wire stops).
 */
import { AbstractMessageWriter, type Message, type MessageWriter, type ResponseMessage } from 'vscode-jsonrpc/node';
import { MAX_MESSAGE_SIZE_1, RpcErrorCodes } from '../../../protocol/jsonrpc';
import { Base64Chunk } from './base64-chunk';
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

/**
 * A message's bytes. `transfer/data` is nearly all a stream transfer sends: its chunk (a
 * Base64Chunk) is encoded straight into the message, without a base64 string, JSON.stringify's
 * scan and a UTF-8 pass over hundreds of KiB per message; into a buffer from `allocate` when
 * given (the bytes are then the start of it).
 */
export function serializeMessage(message: Message, allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafe(size)): Buffer {
  const m = message as { method?: unknown; params?: { transfer?: unknown; data?: unknown } };
  const data = m.params?.data;
  const transfer = m.params?.transfer;
  if (m.method !== 'transfer/data' || !(data instanceof Base64Chunk) || !Number.isSafeInteger(transfer)) {
    return Buffer.from(JSON.stringify(message), 'utf8');
  }
  const head = `{"jsonrpc":"2.0","method":"transfer/data","params":{"transfer":${transfer as number},"data":"`;
  const tail = '"}}';
  const size = head.length + data.encodedLength + tail.length;
  const out = allocate(size).subarray(0, size);
  let at = out.write(head, 0, 'latin1');
  at = data.encodeInto(out, at);
  out.write(tail, at, 'latin1');
  return out;
}

/** `transfer/data` buffers a writer keeps for reuse (a few transfers' worth; each holds one message at a time). */
const MAX_SPARE_BUFFERS = 4;
/** Spare buffers are allocated in steps of this, so the chunks of one transfer fit the same buffer. */
const SPARE_BUFFER_STEP = 64 * 1024;

export abstract class HandoutMessageWriter extends AbstractMessageWriter implements MessageWriter {
  private last: Promise<void> = Promise.resolve();
  private queuedMessages = 0;
  /** Called whenever `queued` changes (the connection's flow control). */
  onQueueChange: () => void = () => undefined;
  /** Called as the response to request `id` is written. */
  onResponse: (id: string | number) => void = () => undefined;

  /** Message buffers free again, when `reusesSent`. */
  private readonly spareBuffers: Buffer[] = [];

  /**
   * @param reusesSent whether a buffer is free again once send() resolved (the bytes were copied
   * out): `transfer/data` buffers are then reused. A fresh buffer of hundreds of KiB per message
   * made glibc grow and trim its heap each time, and the kernel fault in zeroed pages again:
   * that cost a stream transfer more CPU than encoding it.
   */
  constructor(private readonly handouts: TransferHandouts, private readonly reusesSent = false) {
    super();
  }

  write(message: Message): Promise<void> {
    const handout = isResponse(message) ? this.handouts.take(message) : undefined;
    if (isResponse(message) && message.id !== null) this.onResponse(message.id);
    let out = message;
    let reusable: Buffer | undefined;
    let data = this.reusesSent ? serializeMessage(message, (size) => (reusable = this.spareBuffer(size))) : serializeMessage(message);
    let fd = handout?.fd;
    if (data.length > MAX_MESSAGE_SIZE_1 && isResponse(message)) {
      out = tooLargeResponse(message, data.length, `the ${MAX_MESSAGE_SIZE_1}-byte message limit`);
      data = Buffer.from(JSON.stringify(out));
      this.discard(fd);
      fd = undefined;
    }
    this.queuedMessages++;
    this.onQueueChange();
    const writing = this.send(out, data, fd).then(
      () => {
        if (reusable !== undefined && this.spareBuffers.length < MAX_SPARE_BUFFERS) this.spareBuffers.push(reusable);
        handout?.onWritten(out === message); // a replaced response named no transfer to the client
      },
      (err: unknown) => {
        handout?.onWritten(false);
        this.fireError(err, message, 1);
        throw err;
      },
    );
    this.last = writing.catch(() => undefined).then(() => {
      this.queuedMessages--;
      this.onQueueChange();
    });
    return writing;
  }

  /** Messages handed to write() and not yet out. */
  get queued(): number {
    return this.queuedMessages;
  }

  /** A spare buffer of at least `size` bytes, or a new one. */
  private spareBuffer(size: number): Buffer {
    const index = this.spareBuffers.findIndex((b) => b.length >= size);
    if (index >= 0) return this.spareBuffers.splice(index, 1)[0]!;
    return Buffer.allocUnsafeSlow(Math.ceil(size / SPARE_BUFFER_STEP) * SPARE_BUFFER_STEP);
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
