/**
 * Protocol 1.0 on one connection, whatever its framing: vscode-jsonrpc's MessageConnection over
 * a reader and writer of this directory, every request dispatched by one handler. Requests run
 * concurrently and are answered as each finishes; `$/cancelRequest` aborts the request's
 * signal. Initialize chooses the payload, Shutdown answers and then ends the wire.
 */
import { CancellationToken, createMessageConnection, type Logger as RpcLogger, type MessageReader } from 'vscode-jsonrpc/node';
import { CancelledError, clipInput, InvalidArgumentError, NotInitializedError, UnknownMethodError } from '../../../protocol/errors';
import {
  DEFAULT_STREAM_WINDOW, MAX_STREAM_WINDOW, MIN_STREAM_WINDOW, Notifications1, PARAMS_1, PAYLOAD_KINDS, PROTOCOL_MAJOR_1, PROTOCOL_VERSION_1,
  TRANSFER_METHODS_1, type InitializeParams, type InitializeResult, type Method1, type PayloadKind,
} from '../../../protocol/jsonrpc';
import type { Logger } from '../../log';
import { METHOD_IMPLEMENTATIONS_1, type PendingTransfer } from '../../service/methods-1';
import type { Session } from '../../service/session';
import type { WireEnd } from '../skopeo/wire';
import { TransferDelivery, type OpenFifo } from './delivery';
import { responseErrorOf } from './error-code';
import type { TransferHandouts } from './handouts';
import { checkParams } from './params';
import type { HandoutMessageWriter } from './writer';

export interface JsonRpcWireOptions {
  /** layerpipe's version, for Initialize's `server.version`. */
  readonly serverVersion: string;
  /** Offers the `fifo` payload: opens a FIFO sink for one transfer. Absent: `fifo` is not offered. */
  readonly openFifo?: OpenFifo;
}

/** One connection's framing, as the wire needs it. */
export interface RpcTransport {
  readonly reader: MessageReader & { pause(): void; resume(): void };
  readonly writer: HandoutMessageWriter;
  readonly handouts: TransferHandouts;
  /** Payloads the framing can carry (`fifo` is added when the options can open FIFOs). */
  readonly payloads: readonly PayloadKind[];
  /** Largest decoded chunk of one `transfer/data`. */
  readonly streamChunk: number;
  /** Closes the underlying channel (called once, when the wire ends). */
  close(): void;
}

/**
 * Requests in flight past which the connection is not read (the client then blocks) until the
 * replies bring them down to the low mark: a client that never reads cannot grow the server.
 */
const IN_FLIGHT_HIGH = 256;
const IN_FLIGHT_LOW = 128;

function isMethod1(method: string): method is Method1 {
  return Object.hasOwn(PARAMS_1, method);
}

function checkVersion(version: string): void {
  const match = /^(\d+)(?:\.(?:\d+|x)){0,2}$/.exec(version);
  if (match !== null && Number(match[1]) === PROTOCOL_MAJOR_1) return;
  const hint = match !== null && Number(match[1]) === 0
    ? '; 0.2.x is the skopeo wire, chosen by a first message without "jsonrpc"'
    : '';
  throw new InvalidArgumentError(`Initialize: protocol version ${JSON.stringify(clipInput(version))} is not served: this server speaks ${PROTOCOL_VERSION_1} (ask for "1.0" or "1.x")${hint}`);
}

function rpcLogger(log: Logger): RpcLogger {
  const debug = (message: string): void => log.debug(`jsonrpc: ${message}`);
  return { error: debug, warn: debug, info: debug, log: debug };
}

export function serveJsonRpc(transport: RpcTransport, session: Session, log: Logger, options: JsonRpcWireOptions): Promise<WireEnd> {
  return new Promise<WireEnd>((resolve) => {
    const { reader, writer, handouts } = transport;
    const connection = createMessageConnection(reader, writer, rpcLogger(log));
    const offered: readonly PayloadKind[] = PAYLOAD_KINDS.filter((p) => transport.payloads.includes(p) || (p === 'fifo' && options.openFifo !== undefined));
    let delivery: TransferDelivery | undefined;
    let inFlight = 0;
    let ended = false;

    const finish = (why: WireEnd): void => {
      if (ended) return;
      ended = true;
      log.debug(`1.0 wire ends: ${why}`);
      connection.dispose();
      handouts.close();
      transport.close();
      resolve(why);
    };

    const initialize = (params: InitializeParams): InitializeResult => {
      checkVersion(params.protocolVersion);
      const wanted = params.payloads ?? PAYLOAD_KINDS;
      // The client's order decides; names this server does not know are passed over.
      const payload = wanted.find((p): p is PayloadKind => offered.includes(p as PayloadKind));
      if (payload === undefined) {
        throw new InvalidArgumentError(`Initialize: none of the payloads ${JSON.stringify(wanted).slice(0, 200)} is offered on this connection (offered: ${offered.join(', ')})`);
      }
      session.markInitialized();
      const window = Math.min(MAX_STREAM_WINDOW, Math.max(MIN_STREAM_WINDOW, params.window ?? DEFAULT_STREAM_WINDOW));
      delivery = new TransferDelivery({ session, connection, handouts, log, payload, window, streamChunk: transport.streamChunk, openFifo: options.openFifo });
      return { protocolVersion: PROTOCOL_VERSION_1, server: { name: 'layerpipe', version: options.serverVersion }, methods: Object.keys(PARAMS_1), payload, window };
    };

    const handle = async (method: string, params: unknown, signal: AbortSignal): Promise<unknown> => {
      if (!isMethod1(method)) throw new UnknownMethodError(`unknown method: ${clipInput(method)}`);
      if (ended) throw new CancelledError('connection closing');
      const checked = checkParams(method, params);
      if (method === 'Initialize') return initialize(checked as InitializeParams);
      if (method === 'Shutdown') {
        // After this response is queued (vscode-jsonrpc writes it once this promise settles).
        setImmediate(() => void writer.flushed().then(() => finish('shutdown')));
        return null;
      }
      if (delivery === undefined) throw new NotInitializedError(`${method}: call Initialize first`);
      const deliverTo = delivery;
      const implementation = METHOD_IMPLEMENTATIONS_1[method] as (s: Session, p: unknown, sig: AbortSignal) => Promise<unknown>;
      return session.run(async (requestSignal) => {
        const value = await implementation(session, checked, requestSignal);
        return TRANSFER_METHODS_1.includes(method) ? deliverTo.deliver(value as PendingTransfer) : value;
      }, signal);
    };

    connection.onRequest(async (method: string, params: unknown, token: CancellationToken) => {
      if (++inFlight === IN_FLIGHT_HIGH) reader.pause();
      const cancel = new AbortController();
      const subscription = token.onCancellationRequested(() => cancel.abort(new CancelledError(`${clipInput(method)} cancelled by the client`)));
      if (log.debugEnabled) log.debug(`request ${clipInput(method)} ${JSON.stringify(params)?.slice(0, 500)}`);
      try {
        const result = await handle(method, params, cancel.signal);
        if (log.debugEnabled) log.debug(`reply ${clipInput(method)}: ${JSON.stringify(result)?.slice(0, 500)}`);
        return result;
      } catch (err) {
        const error = responseErrorOf(err);
        if (log.debugEnabled) log.debug(`reply ${clipInput(method)}: error ${error.code} ${error.message}`);
        throw error;
      } finally {
        subscription.dispose();
        if (--inFlight === IN_FLIGHT_LOW) reader.resume();
      }
    });
    connection.onNotification(Notifications1.TransferCredit.method, (params: unknown) => {
      if (delivery === undefined) log.debug('ignored transfer/credit before Initialize');
      else delivery.credit(params);
    });
    connection.onUnhandledNotification((message) => log.debug(`ignored notification ${clipInput(message.method)}`));
    connection.onClose(() => finish('eof'));
    connection.listen();
  });
}
