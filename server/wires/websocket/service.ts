/**
 * `layerpipe serve --listen ws://HOST:PORT` (or wss:// with a certificate): protocol 1.0 for
 * browsers and WebAssembly hosts. Each WebSocket is a Session of its own, served by the same 1.0
 * wire and methods as the unix service, all sharing one SystemContext. Access is settled at the
 * HTTP upgrade (access.ts): a refused request gets 401, 403 or 503 and nothing is opened.
 * Limits: MAX_MESSAGE_SIZE_1 per message (larger ones are refused and the connection goes on;
 * past WS_MAX_FRAME it is closed with 1009), connections, transfers held per connection, and
 * an idle ping: a peer that leaves a ping unanswered for a whole interval is dropped.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { errorMessage } from '../../../protocol/errors';
import { MAX_MESSAGE_SIZE_1 } from '../../../protocol/jsonrpc';
import { WS_SUBPROTOCOL_1 } from '../../../protocol/websocket';
import { Session } from '../../service/session';
import { serveJsonRpc } from '../jsonrpc/connection';
import { TransferHandouts } from '../jsonrpc/handouts';
import { DEFAULT_GRACE_MS, type ServiceOptions } from '../service/service';
import { refusalOf, type BearerToken, type Refusal } from './access';
import { formatWebSocketAddress, type WebSocketAddress } from './address';
import { WS_STREAM_CHUNK, WebSocketMessageReader, WebSocketMessageWriter } from './framing';

export const WS_MAX_CONNECTIONS = 256;
export const WS_MAX_HELD_TRANSFERS = 64;
export const WS_PING_INTERVAL_MS = 30_000;
/** Frames up to this size are read and refused by the 1.0 gate (the connection goes on); larger ones close it. */
export const WS_MAX_FRAME = 2 * MAX_MESSAGE_SIZE_1;
const DRAIN_POLL_MS = 25;
const CLOSE_WAIT_MS = 2_000;

export interface WebSocketServiceOptions extends ServiceOptions {
  readonly address: WebSocketAddress;
  /** wss://: the PEM certificate chain and key. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  readonly token: BearerToken;
  /** Origins (scheme://host[:port]) whose pages may connect; none by default. */
  readonly allowedOrigins: readonly string[];
  readonly maxConnections?: number;
  readonly maxHeldTransfers?: number;
  readonly pingIntervalMs?: number;
}

interface Connection {
  readonly socket: WebSocket;
  readonly session: Session;
  done: Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const STATUS_TEXT: Record<Refusal['status'] | 503, string> = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' };

/** Answers an upgrade request with an HTTP error and closes its socket: no WebSocket is opened. */
function refuseUpgrade(socket: Duplex, status: Refusal['status'] | 503, reason: string): void {
  const body = `${reason}\n`;
  const extra = status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '';
  socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  socket.once('finish', () => socket.destroy());
}

export class WebSocketService {
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly connections = new Map<number, Connection>();
  private nextId = 0;
  private stopping: Promise<void> | undefined;
  private boundName = '';

  constructor(private readonly options: WebSocketServiceOptions) {
    const refuseHttp = (_req: IncomingMessage, res: ServerResponse): void => {
      res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' }).end('this endpoint speaks WebSocket only\n');
    };
    this.server = options.tls !== undefined ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, refuseHttp) : createHttpServer(refuseHttp);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: WS_MAX_FRAME,
      perMessageDeflate: false,
      // Only the 1.0 name is ever selected: a bearer.TOKEN entry is never echoed back.
      handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL_1) ? WS_SUBPROTOCOL_1 : false),
    });
    this.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(request, socket, head));
    this.server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  }

  /** The address actually bound (port 0 picks one), e.g. ws://127.0.0.1:40123. */
  get name(): string {
    return this.boundName;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Listens; resolves with the bound address. */
  start(): Promise<string> {
    const { host, port, secure } = this.options.address;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const bound = this.server.address() as AddressInfo;
        this.boundName = formatWebSocketAddress(secure, bound.address, bound.port);
        this.options.log.debug(`serving on ${this.boundName}`);
        resolve(this.boundName);
      });
    });
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { log } = this.options;
    socket.on('error', () => undefined); // a peer resetting during the handshake is not a fault
    if (this.stopping !== undefined) return refuseUpgrade(socket, 503, 'the service is stopping');
    const refusal = refusalOf(request, this.options.token, this.options.allowedOrigins);
    if (refusal !== undefined) {
      log.debug(`refused a WebSocket from ${request.socket.remoteAddress ?? '?'}: ${refusal.status} ${refusal.reason}`);
      return refuseUpgrade(socket, refusal.status, refusal.reason);
    }
    const limit = this.options.maxConnections ?? WS_MAX_CONNECTIONS;
    if (this.connections.size >= limit) {
      log.warn(`refusing a WebSocket: ${limit} connections are being served`);
      return refuseUpgrade(socket, 503, `${limit} connections are being served`);
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
  }

  private accept(socket: WebSocket): void {
    const { log } = this.options;
    // The wire's reader hears errors while it serves; afterwards (closing) they must not crash the service.
    socket.on('error', () => undefined);
    const id = ++this.nextId;
    const session = new Session({ ctx: this.options.ctx, guard: this.options.guard });
    const connection: Connection = { socket, session, done: Promise.resolve() };
    this.connections.set(id, connection);
    log.debug(`ws connection ${id}: accepted`);
    const stopPing = this.keepAlive(socket);
    const handouts = new TransferHandouts();
    const writer = new WebSocketMessageWriter(socket, handouts);
    const refuse = (response: Parameters<WebSocketMessageWriter['write']>[0]): void => void writer.write(response).catch(() => undefined);
    const reader = new WebSocketMessageReader(socket, refuse, log);
    connection.done = serveJsonRpc({
      reader,
      writer,
      handouts,
      payloads: ['stream'],
      streamChunk: WS_STREAM_CHUNK,
      sendStreamChunk: (transfer, chunk) => writer.sendStreamChunk(transfer, chunk),
      maxHeldTransfers: this.options.maxHeldTransfers ?? WS_MAX_HELD_TRANSFERS,
      answersAfterEnd: false,
      close: () => socket.close(1000),
    }, session, log, {})
      .then(
        (why) => log.debug(`ws connection ${id}: ended (${why})`),
        (err: unknown) => log.warn(`ws connection ${id}: ${errorMessage(err)}`),
      )
      .then(() => session.close())
      .catch((err: unknown) => log.warn(`ws connection ${id}: closing its session: ${errorMessage(err)}`))
      .finally(() => {
        stopPing();
        this.connections.delete(id);
      });
  }

  /** Pings every interval; a peer that did not answer the previous ping is dropped. */
  private keepAlive(socket: WebSocket): () => void {
    let answered = true;
    socket.on('pong', () => {
      answered = true;
    });
    const timer = setInterval(() => {
      if (!answered) {
        this.options.log.debug('dropping a WebSocket that did not answer a ping');
        socket.terminate();
        return;
      }
      answered = false;
      socket.ping();
    }, this.options.pingIntervalMs ?? WS_PING_INTERVAL_MS);
    socket.once('close', () => clearInterval(timer));
    return () => clearInterval(timer);
  }

  /** Stops accepting, lets held transfers finish within the grace period, then closes every connection. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  private async drainAndClose(): Promise<void> {
    this.server.close();
    const deadline = Date.now() + (this.options.graceMs ?? DEFAULT_GRACE_MS);
    const busy = (c: Connection): boolean => c.session.activeTransfers > 0 || c.session.heldTransfers > 0;
    while (Date.now() < deadline && [...this.connections.values()].some(busy)) await sleep(DRAIN_POLL_MS);
    const left = [...this.connections.values()];
    for (const connection of left) {
      connection.socket.close(1001, 'the service is stopping');
      void connection.session.close();
    }
    await Promise.race([Promise.allSettled(left.map((c) => c.done)), sleep(CLOSE_WAIT_MS)]);
    for (const connection of left) connection.socket.terminate();
    this.server.closeAllConnections();
  }
}
