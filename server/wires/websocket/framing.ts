/**
 * Protocol 1.0 framing on a WebSocket (protocol/websocket.ts): one JSON-RPC message per text
 * frame, a stream transfer's bytes as binary data frames. The socket's own backpressure bounds
 * what the server holds for a slow reader: a data frame is taken at once while the socket's
 * buffered amount is under STREAM_HIGH_WATER_MARK, else only once it has been written out, so a
 * transfer stops reading its source while the browser is behind.
 */
import type { DataCallback, Disposable, Message, ResponseMessage } from 'vscode-jsonrpc/node';
import type WebSocket from 'ws';
import { MAX_STREAM_CHUNK, RpcErrorCodes } from '../../../protocol/jsonrpc';
import { WS_DATA_HEADER_BYTES, WS_MAX_TRANSFER_ID, writeDataHeader } from '../../../protocol/websocket';
import type { Logger } from '../../log';
import type { TransferHandouts } from '../jsonrpc/handouts';
import { admitBytes, GatedMessageReader, routeAdmission } from '../jsonrpc/message-gate';
import { HandoutMessageWriter } from '../jsonrpc/writer';

/** Bytes the socket may hold unwritten before a data frame waits for its own write. */
export const STREAM_HIGH_WATER_MARK = 1024 * 1024;
/** Largest bytes of one binary data frame. */
export const WS_STREAM_CHUNK = MAX_STREAM_CHUNK;

function refusal(message: string): ResponseMessage {
  return { jsonrpc: '2.0', id: null, error: { code: RpcErrorCodes.InvalidRequest, message } };
}

export class WebSocketMessageReader extends GatedMessageReader {
  constructor(private readonly socket: WebSocket, refuse: (response: ResponseMessage) => void, log: Logger) {
    super(refuse, (text) => log.debug(text));
  }

  listen(callback: DataCallback): Disposable {
    const routes = this.routes(callback);
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      if (isBinary) {
        routes.refused(refusal('binary frames travel from the server only: send each JSON-RPC message as one text frame'));
        return;
      }
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      routeAdmission(admitBytes(bytes), routes);
    };
    const onClose = (): void => this.fireClose();
    const onError = (err: Error): void => this.fireError(err);
    this.socket.on('message', onMessage);
    this.socket.on('close', onClose);
    this.socket.on('error', onError);
    return {
      dispose: () => {
        this.socket.off('message', onMessage);
        this.socket.off('close', onClose);
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

function socketClosed(): Error {
  return Object.assign(new Error('the WebSocket is closed'), { code: 'ERR_SOCKET_CLOSED' });
}

/** Sends `data` as one frame; resolves at once while the socket is under the high-water mark, else once written. */
function sendFrame(socket: WebSocket, data: Buffer, binary: boolean): Promise<void> {
  if (socket.readyState !== socket.OPEN) return Promise.reject(socketClosed());
  return new Promise((resolve, reject) => {
    let settled = false;
    socket.send(data, { binary }, (err) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve();
    });
    if (!settled && socket.bufferedAmount <= STREAM_HIGH_WATER_MARK) {
      settled = true;
      resolve();
    }
  });
}

export class WebSocketMessageWriter extends HandoutMessageWriter {
  constructor(private readonly socket: WebSocket, handouts: TransferHandouts) {
    super(handouts);
  }

  protected send(_message: Message, data: Buffer): Promise<void> {
    return sendFrame(this.socket, data, false);
  }

  protected discard(): void {
    // No fds travel on a WebSocket.
  }

  /** One binary data frame of `transfer` (RpcTransport.sendStreamChunk). */
  sendStreamChunk(transfer: number, chunk: Buffer): Promise<void> {
    if (transfer > WS_MAX_TRANSFER_ID) return Promise.reject(new Error(`transfer ${transfer} cannot be named by a data frame`));
    const frame = Buffer.allocUnsafe(WS_DATA_HEADER_BYTES + chunk.length);
    writeDataHeader(frame, transfer);
    chunk.copy(frame, WS_DATA_HEADER_BYTES);
    return sendFrame(this.socket, frame, true);
  }
}
