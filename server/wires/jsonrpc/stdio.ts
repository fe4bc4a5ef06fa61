/**
 * Protocol 1.0 framing on a byte stream (stdin/stdout): vscode-jsonrpc's `Content-Length` header
 * framing, done here rather than by its StreamMessageReader/Writer. Its reader buffers a body
 * of any announced length and answers nothing to a body that is not JSON: this one refuses a
 * Content-Length over MAX_MESSAGE_SIZE_1 before reading the body (skipping it without
 * buffering) and answers every refusal, so the connection keeps serving. Its writer serialises
 * each message again: this one writes the bytes the shared writer already made (writer.ts).
 */
import type { Readable, Writable } from 'node:stream';
import type { DataCallback, Disposable, ResponseMessage } from 'vscode-jsonrpc/node';
import { MAX_MESSAGE_SIZE_1, RpcErrorCodes } from '../../../protocol/jsonrpc';
import type { Logger } from '../../log';
import type { TransferHandouts } from './handouts';
import { admitBytes, GatedMessageReader, refuseOversized, routeAdmission, type AdmissionRoutes } from './message-gate';
import { HandoutMessageWriter } from './writer';

/** Longest header section accepted (vscode-jsonrpc sends two short headers). */
const MAX_HEADER_BYTES = 8 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');

type Frame = { readonly length: number } | { readonly error: string };

function parseHeaders(text: string): Frame {
  let length: number | undefined;
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) return { error: `malformed header line ${JSON.stringify(line.slice(0, 80))}` };
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) return { error: `Content-Length must be a decimal number, not ${JSON.stringify(value.slice(0, 40))}` };
      length = Number(value);
    }
  }
  return length === undefined ? { error: 'a header section without Content-Length' } : { length };
}

function frameError(message: string): ResponseMessage {
  return { jsonrpc: '2.0', id: null, error: { code: RpcErrorCodes.InvalidRequest, message: `framing error: ${message}` } };
}

export class ContentLengthMessageReader extends GatedMessageReader {
  private pending: Buffer = Buffer.alloc(0);
  /** Body bytes still to take (into `body`, or skipped when the message is refused). */
  private bodyLeft = -1;
  private body: Buffer[] = [];
  private skipping = false;
  private admission: AdmissionRoutes | undefined;

  constructor(private readonly input: Readable, refuse: (response: ResponseMessage) => void, log: Logger) {
    super(refuse, (text) => log.debug(text));
  }

  listen(callback: DataCallback): Disposable {
    this.admission = this.routes(callback);
    const onData = (chunk: Buffer): void => this.take(chunk);
    const onEnd = (): void => this.fireClose();
    const onError = (err: Error): void => {
      this.fireError(err);
      this.fireClose();
    };
    this.input.on('data', onData);
    this.input.on('end', onEnd);
    this.input.on('error', onError);
    return {
      dispose: () => {
        this.input.off('data', onData);
        this.input.off('end', onEnd);
        this.input.off('error', onError);
      },
    };
  }

  pause(): void {
    this.input.pause();
  }

  resume(): void {
    this.input.resume();
  }

  private take(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0) {
      if (this.bodyLeft >= 0) {
        const part = rest.subarray(0, this.bodyLeft);
        rest = rest.subarray(part.length);
        this.bodyLeft -= part.length;
        if (!this.skipping) this.body.push(part);
        if (this.bodyLeft === 0) this.endBody();
        continue;
      }
      this.pending = this.pending.length === 0 ? rest : Buffer.concat([this.pending, rest]);
      rest = Buffer.alloc(0);
      const end = this.pending.indexOf(HEADER_END);
      if (end < 0) {
        if (this.pending.length > MAX_HEADER_BYTES) {
          // No way to find the next message: drop what came, answer once, and look for a header again.
          this.pending = Buffer.alloc(0);
          this.admission!.refused(frameError(`no end of headers within ${MAX_HEADER_BYTES} bytes`));
        }
        return;
      }
      const frame = parseHeaders(this.pending.subarray(0, end).toString('latin1'));
      rest = this.pending.subarray(end + HEADER_END.length);
      this.pending = Buffer.alloc(0);
      if ('error' in frame) {
        this.admission!.refused(frameError(frame.error));
        continue;
      }
      this.skipping = frame.length > MAX_MESSAGE_SIZE_1;
      if (this.skipping) routeAdmission(refuseOversized(frame.length), this.admission!);
      this.bodyLeft = frame.length;
      if (frame.length === 0) this.endBody();
    }
  }

  private endBody(): void {
    const bytes = Buffer.concat(this.body);
    const skipped = this.skipping;
    this.body = [];
    this.bodyLeft = -1;
    this.skipping = false;
    if (!skipped) routeAdmission(admitBytes(bytes), this.admission!);
  }
}

export class StdioMessageWriter extends HandoutMessageWriter {
  constructor(private readonly output: Writable, handouts: TransferHandouts) {
    super(handouts, true); // send resolves once the stream has written the frame out
    // Failures reach the writes' callbacks; an unheard 'error' must not crash the process.
    output.on('error', () => undefined);
  }

  /** Resolves once the frame is written out (the stream's backpressure). */
  protected send(_message: unknown, data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      // Corked, header and body leave in one writev, not two writes.
      this.output.cork();
      this.output.write(`Content-Length: ${data.length}\r\n\r\n`, 'ascii');
      this.output.write(data, (err) => (err ? reject(err) : resolve()));
      this.output.uncork();
    });
  }

  protected discard(): void {
    // No fds travel on a byte stream.
  }
}
