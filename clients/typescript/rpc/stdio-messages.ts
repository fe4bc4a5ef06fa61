/**
 * The client's reader of Content-Length framed messages (a `serve --stdio` child's stdout), in
 * place of vscode-jsonrpc's StreamMessageReader, which decodes every body to a string and parses
 * it: here a `transfer/data` goes to the TransferDataRoute from its bytes, and only the other
 * messages are parsed. A body larger than the protocol's message limit is a broken peer: the
 * reader reports it and stops, so memory stays bounded whatever the proxy announces.
 */
import type { Readable } from 'node:stream';
import { AbstractMessageReader, type DataCallback, type Disposable, type Message } from 'vscode-jsonrpc/node';
import { MAX_MESSAGE_SIZE_1 } from '../../../protocol/jsonrpc';
import type { TransferDataRoute } from './transfer-data';

const HEADER_END = Buffer.from('\r\n\r\n');
/** Longest header section accepted (layerpipe sends one short header). */
const MAX_HEADER_BYTES = 8 * 1024;

function contentLength(headers: string): number {
  for (const line of headers.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'content-length') {
      const value = line.slice(colon + 1).trim();
      if (/^\d{1,15}$/.test(value)) return Number(value);
      throw new Error(`the proxy sent a bad Content-Length: ${JSON.stringify(value.slice(0, 40))}`);
    }
  }
  throw new Error(`the proxy sent a header section without Content-Length: ${JSON.stringify(headers.slice(0, 200))}`);
}

export class ContentLengthMessageReader extends AbstractMessageReader {
  /** Header bytes received so far (when no body is being read). */
  private pending: Buffer = Buffer.alloc(0);
  /** The body being gathered across chunks, and how much of it has come. */
  private body: Buffer | undefined;
  private filled = 0;
  /**
   * The buffer bodies split across chunks are gathered in, kept for the next one: a fresh
   * buffer of a few hundred KiB per message grew and trimmed the malloc heap each time, page
   * faults included. A body is only used during deliver(), so one buffer serves them all.
   */
  private gather: Buffer = Buffer.alloc(0);
  private callback: DataCallback | undefined;
  private readonly early: Message[] = [];
  private stopped = false;

  constructor(private readonly input: Readable, private readonly transferData: TransferDataRoute) {
    super();
    const close = (): void => {
      if (this.stopped) return;
      this.stopped = true;
      this.fireClose();
    };
    input.on('data', (chunk: Buffer) => this.take(chunk));
    input.on('end', close);
    input.on('close', close);
    input.on('error', (err: Error) => {
      this.fireError(err);
      close();
    });
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    for (const message of this.early.splice(0)) callback(message);
    return { dispose: () => { this.callback = undefined; } };
  }

  private take(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0 && !this.stopped) {
      if (this.body !== undefined) {
        const taken = rest.copy(this.body, this.filled);
        this.filled += taken;
        rest = rest.subarray(taken);
        if (this.filled === this.body.length) {
          const body = this.body;
          this.body = undefined;
          this.deliver(body);
        }
        continue;
      }
      this.pending = this.pending.length === 0 ? rest : Buffer.concat([this.pending, rest]);
      rest = Buffer.alloc(0);
      const end = this.pending.indexOf(HEADER_END);
      if (end < 0) {
        if (this.pending.length > MAX_HEADER_BYTES) this.fail(new Error(`the proxy sent no end of headers within ${MAX_HEADER_BYTES} bytes`));
        return;
      }
      let length: number;
      try {
        length = contentLength(this.pending.toString('latin1', 0, end));
      } catch (err) {
        return this.fail(err as Error);
      }
      if (length > MAX_MESSAGE_SIZE_1) return this.fail(new Error(`the proxy announced a ${length}-byte message, over the ${MAX_MESSAGE_SIZE_1}-byte limit`));
      rest = this.pending.subarray(end + HEADER_END.length);
      this.pending = Buffer.alloc(0);
      if (rest.length >= length) {
        // The whole body is here: it is used where it lies.
        const body = rest.subarray(0, length);
        rest = rest.subarray(length);
        this.deliver(body);
      } else {
        if (this.gather.length < length) this.gather = Buffer.allocUnsafe(length);
        this.body = this.gather.subarray(0, length);
        this.filled = 0;
      }
    }
  }

  /** Hands one body on; `body` may be a view of a chunk, used only during the call. */
  private deliver(body: Buffer): void {
    if (this.transferData.route(body)) return;
    let message: Message;
    try {
      message = JSON.parse(body.toString('utf8')) as Message;
    } catch (err) {
      this.fireError(new Error(`the proxy sent a message that is not JSON: ${(err as Error).message}`));
      return;
    }
    if (this.callback === undefined) this.early.push(message);
    else this.callback(message);
  }

  /** The framing is broken: nothing after this can be trusted, so the reader stops and the connection closes. */
  private fail(err: Error): void {
    this.fireError(err);
    this.pending = Buffer.alloc(0);
    this.body = undefined;
    this.input.destroy();
  }
}
