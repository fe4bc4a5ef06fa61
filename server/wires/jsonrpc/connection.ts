/**
 * Protocol 1.0 on one connection, whatever its framing: vscode-jsonrpc's MessageConnection over
 * a reader and writer of this directory, every request dispatched by one handler. Requests run
 * concurrently and are answered as each finishes; `$/cancelRequest` aborts the request's
 * signal. Initialize chooses the payload, Shutdown answers and then ends the wire.
 */
import { CancellationToken, createMessageConnection, type Logger as RpcLogger } from 'vscode-jsonrpc/node';
import { CancelledError, clipInput, InvalidArgumentError, NotInitializedError, systemCode, UnknownMethodError } from '../../../protocol/errors';
import {
  DEFAULT_STREAM_WINDOW, MAX_STREAM_WINDOW, MIN_STREAM_WINDOW, Notifications1, PARAMS_1, PAYLOAD_KINDS, PROTOCOL_MAJOR_1, PROTOCOL_VERSION_1,
  TRANSFER_METHODS_1, type InitializeParams, type InitializeResult, type Method1, type PayloadKind,
} from '../../../protocol/jsonrpc';
import type { Logger } from '../../log';
import { METHOD_IMPLEMENTATIONS_1, type PendingTransfer } from '../../service/methods-1';
import type { Session } from '../../service/session';
import type { Lifetime } from '../../service/lifetime';
import type { WireEnd } from '../skopeo/wire';
import type { SessionFifos } from '../../transfer/sinks/fifo';
import { TransferDelivery } from './delivery';
import { responseErrorOf } from './error-code';
import type { TransferHandouts } from './handouts';
import { CANCEL_METHOD, type GatedMessageReader } from './message-gate';
import { checkParams } from './params';
import type { HandoutMessageWriter } from './writer';
import { packageVersion } from '../../version';

export interface JsonRpcWireOptions {
  /** Offers the `fifo` payload: the session's FIFOs, one per transfer. Absent: `fifo` is not offered. */
  readonly fifos?: SessionFifos;
}

/** One connection's framing, as the wire needs it. */
export interface RpcTransport {
  readonly reader: GatedMessageReader;
  readonly writer: HandoutMessageWriter;
  readonly handouts: TransferHandouts;
  /** Payloads the framing can carry (`fifo` is added when the options can open FIFOs). */
  readonly payloads: readonly PayloadKind[];
  /** The preference when Initialize names none; default PAYLOAD_KINDS' order. */
  readonly defaultPayloads?: readonly PayloadKind[];
  /** Largest decoded chunk of one `transfer/data`. */
  readonly streamChunk: number;
  /**
   * Sends a stream transfer's next bytes in the framing's own way (a WebSocket's binary frames);
   * resolves once the framing can take more. Absent: `transfer/data` notifications.
   */
  readonly sendStreamChunk?: (transfer: number, chunk: Buffer) => Promise<void>;
  /** Transfers one connection may hold at once (below the session's own bound). Absent: the session's. */
  readonly maxHeldTransfers?: number;
  /**
   * Whether the client may still read after its input ended (stdio: stdin closed, stdout still
   * read), so every request already received is answered first. A SEQPACKET end is the whole
   * connection's: the wire ends at once.
   */
  readonly answersAfterEnd: boolean;
  /** Closes the underlying channel (called once, when the wire ends). */
  close(): void;
}

/**
 * Requests in flight plus messages not yet written, past which the connection is not read (the
 * client then blocks) until they are down to the low mark: a client that sends and never reads
 * cannot grow the server.
 */
const LOAD_HIGH = 256;
const LOAD_LOW = 128;

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

/** A write that failed because the client is gone: the end of the connection, not a fault. */
function peerGone(err: unknown): boolean {
  const code = systemCode(err);
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_SOCKET_CLOSED' || code === 'ERR_STREAM_DESTROYED';
}

function rpcLogger(log: Logger): RpcLogger {
  const debug = (message: string): void => log.debug(`jsonrpc: ${message}`);
  return { error: debug, warn: debug, info: debug, log: debug };
}

export function serveJsonRpc(transport: RpcTransport, session: Session, log: Logger, options: JsonRpcWireOptions): Promise<WireEnd> {
  return new Promise<WireEnd>((resolve) => {
    const { reader, writer, handouts } = transport;
    /** Messages vscode-jsonrpc has taken from its queue (reader.messagesAdmitted counts the same ones in). */
    let dispatched = 0;
    const connection = createMessageConnection(reader, writer, rpcLogger(log), {
      messageStrategy: {
        handleMessage: (message, next) => {
          if ((message as { method?: unknown }).method !== CANCEL_METHOD) dispatched++;
          next(message);
          updateFlow();
          if (inputEnded) setImmediate(endIfAnswered);
        },
      },
    });
    const offered: readonly PayloadKind[] = PAYLOAD_KINDS.filter((p) => transport.payloads.includes(p) || (p === 'fifo' && options.fifos !== undefined));
    let delivery: TransferDelivery | undefined;
    let inFlight = 0;
    let inputEnded = false;
    let ended = false;
    let paused = false;

    /** Received and not yet dispatched, dispatched and not yet answered, answered and not yet written. */
    const updateFlow = (): void => {
      const load = reader.messagesAdmitted - dispatched + inFlight + writer.queued;
      if (!paused && load >= LOAD_HIGH) {
        paused = true;
        reader.pause();
      } else if (paused && load <= LOAD_LOW) {
        paused = false;
        reader.resume();
      }
    };
    writer.onQueueChange = updateFlow;
    writer.onResponse = (id) => reader.answered(id);
    reader.onAdmit = updateFlow;

    const finish = (why: WireEnd): void => {
      if (ended) return;
      ended = true;
      log.debug(`1.0 wire ends: ${why}`);
      connection.dispose();
      handouts.close();
      transport.close();
      resolve(why);
    };

    /** After the input ended: once every request received is answered and written, the wire ends. */
    const endIfAnswered = (): void => {
      if (!inputEnded || ended || inFlight > 0 || dispatched < reader.messagesAdmitted) return;
      void writer.flushed().then(() => finish('eof'));
    };

    const initialize = (params: InitializeParams): InitializeResult => {
      checkVersion(params.protocolVersion);
      if (session.isInitialized) throw new InvalidArgumentError('Initialize: already initialized');
      const wanted = params.payloads ?? transport.defaultPayloads ?? PAYLOAD_KINDS;
      // The client's order decides; names this server does not know are passed over.
      const payload = wanted.find((p): p is PayloadKind => offered.includes(p as PayloadKind));
      if (payload === undefined) {
        throw new InvalidArgumentError(`Initialize: none of the payloads ${JSON.stringify(wanted).slice(0, 200)} is offered on this connection (offered: ${offered.join(', ')})`);
      }
      session.markInitialized();
      const window = Math.min(MAX_STREAM_WINDOW, Math.max(MIN_STREAM_WINDOW, params.window ?? DEFAULT_STREAM_WINDOW));
      delivery = new TransferDelivery({ session, connection, handouts, log, payload, window, streamChunk: transport.streamChunk, sendStreamChunk: transport.sendStreamChunk, fifos: options.fifos });
      return { protocolVersion: PROTOCOL_VERSION_1, server: { name: 'layerpipe', version: packageVersion() }, methods: Object.keys(PARAMS_1), payload, window };
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
      const maxHeld = transport.maxHeldTransfers;
      if (maxHeld !== undefined && TRANSFER_METHODS_1.includes(method) && session.heldTransfers >= maxHeld) {
        throw new InvalidArgumentError(`${method}: this connection already holds ${maxHeld} transfers, its limit: finish or cancel some first`);
      }
      const implementation = METHOD_IMPLEMENTATIONS_1[method] as (s: Session, p: unknown, request: Lifetime) => Promise<unknown>;
      return session.run(async (request) => {
        const value = await implementation(session, checked, request);
        return TRANSFER_METHODS_1.includes(method) ? deliverTo.deliver(value as PendingTransfer) : value;
      }, signal);
    };

    connection.onRequest(async (method: string, params: unknown, token: CancellationToken) => {
      inFlight++;
      updateFlow();
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
        inFlight--;
        updateFlow();
        if (inputEnded) setImmediate(endIfAnswered); // after vscode-jsonrpc has handed over this response
      }
    });
    connection.onNotification(Notifications1.TransferCredit.method, (params: unknown) => {
      if (delivery === undefined) log.debug('ignored transfer/credit before Initialize');
      else delivery.credit(params);
    });
    connection.onUnhandledNotification((message) => log.debug(`ignored notification ${clipInput(message.method)}`));
    connection.onError(([err]) => {
      if (peerGone(err)) finish('eof');
    });
    connection.onClose(() => {
      if (!transport.answersAfterEnd) return finish('eof');
      inputEnded = true;
      // No credit can come any more: a stream transfer stops when its window is used up.
      delivery?.endOfInput();
      // vscode-jsonrpc still dispatches the messages it queued before the end.
      setImmediate(endIfAnswered);
    });
    connection.listen();
  });
}
