/**
 * What the 1.0 wire lets through to vscode-jsonrpc, whatever the framing (a SEQPACKET packet,
 * a Content-Length frame). vscode-jsonrpc answers nothing to a message it cannot classify, so
 * everything it would drop silently is refused here with the JSON-RPC error a client can act
 * on: -32700 for text that is not JSON, -32600 for a batch, a non-object, a wrong "jsonrpc", a
 * bad id or method, or a message over MAX_MESSAGE_SIZE_1. The connection keeps serving after each.
 */
import { AbstractMessageReader, type DataCallback, type Disposable, type Message, type ResponseMessage } from 'vscode-jsonrpc/node';
import { clipInput } from '../../../protocol/errors';
import { MAX_MESSAGE_SIZE_1, RpcErrorCodes } from '../../../protocol/jsonrpc';

export type Admission =
  | { readonly kind: 'message'; readonly message: Message }
  /** Answer with `response` (a JSON-RPC error), then go on reading. */
  | { readonly kind: 'refused'; readonly response: ResponseMessage }
  /** Nothing to answer (a notification or a client's response the server has no use for). */
  | { readonly kind: 'dropped'; readonly why: string };

type Id = string | number | null;

/** vscode-jsonrpc's own cancellation notification. */
export const CANCEL_METHOD = '$/cancelRequest';

function refuse(id: Id, code: number, message: string): Admission {
  return { kind: 'refused', response: { jsonrpc: '2.0', id, error: { code, message } } };
}

/** The refusal of a message longer than MAX_MESSAGE_SIZE_1, whose content was not read. */
export function refuseOversized(length: number | undefined): Admission {
  const size = length === undefined ? 'more than' : `${length} bytes,`;
  return refuse(null, RpcErrorCodes.InvalidRequest, `message refused: ${size} over the ${MAX_MESSAGE_SIZE_1}-byte limit of protocol 1.0`);
}

function isId(value: unknown): value is string | number {
  return typeof value === 'string' || (typeof value === 'number' && Number.isSafeInteger(value));
}

/** Classifies one parsed JSON value. */
export function admitParsed(value: unknown): Admission {
  if (Array.isArray(value)) {
    return refuse(null, RpcErrorCodes.InvalidRequest, 'batches are not supported by protocol 1.0: send one message at a time (requests may still overlap)');
  }
  if (typeof value !== 'object' || value === null) return refuse(null, RpcErrorCodes.InvalidRequest, 'invalid request: a message must be a JSON object');
  const m = value as Record<string, unknown>;
  const id: Id = isId(m.id) ? m.id : null;
  if (m.jsonrpc !== '2.0') return refuse(id, RpcErrorCodes.InvalidRequest, 'invalid request: "jsonrpc" must be "2.0"');
  if (!('method' in m)) {
    if ('id' in m && ('result' in m || 'error' in m)) return { kind: 'dropped', why: 'a response, but this server sends no requests' };
    return refuse(id, RpcErrorCodes.InvalidRequest, 'invalid request: no "method"');
  }
  if (typeof m.method !== 'string') return refuse(id, RpcErrorCodes.InvalidRequest, 'invalid request: "method" must be a string');
  if ('id' in m && !isId(m.id)) {
    return refuse(null, RpcErrorCodes.InvalidRequest, `invalid request ${clipInput(m.method)}: "id" must be a string or an integer`);
  }
  if ('params' in m && (typeof m.params !== 'object' || m.params === null)) {
    if (!('id' in m)) return { kind: 'dropped', why: `notification ${clipInput(m.method)} with params that are not an object` };
    return refuse(id, RpcErrorCodes.InvalidParams, `${clipInput(m.method)}: params must be an object (by name)`);
  }
  if (m.method === CANCEL_METHOD && !('id' in m)) {
    const params = m.params as Record<string, unknown> | undefined;
    if (!isId(params?.id)) return { kind: 'dropped', why: `${CANCEL_METHOD} without a request id` };
  }
  return { kind: 'message', message: m as unknown as Message };
}

/** Classifies one framed message's bytes. */
export function admitBytes(bytes: Buffer): Admission {
  if (bytes.length > MAX_MESSAGE_SIZE_1) return refuseOversized(bytes.length);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return refuse(null, RpcErrorCodes.ParseError, `parse error: ${clipInput((err as Error).message)}`);
  }
  return admitParsed(value);
}

/** Where an admission goes: a message to vscode-jsonrpc, a refusal to the writer, a drop to the debug log. */
export interface AdmissionRoutes {
  readonly message: (message: Message) => void;
  readonly refused: (response: ResponseMessage) => void;
  readonly debug: (text: string) => void;
}

export function routeAdmission(admission: Admission, routes: AdmissionRoutes): void {
  switch (admission.kind) {
    case 'message': return routes.message(admission.message);
    case 'refused':
      routes.debug(`refused a message: ${admission.response.error?.message ?? ''}`);
      return routes.refused(admission.response);
    case 'dropped': return routes.debug(`ignored a message: ${admission.why}`);
  }
}

/**
 * The 1.0 wire's readers: each frame goes through the gate, and what is let through is counted,
 * so the connection can tell how many messages wait in vscode-jsonrpc's queue (flow control,
 * and answering everything received before the input's end).
 */
export abstract class GatedMessageReader extends AbstractMessageReader {
  private admitted = 0;
  /** Ids of requests let through and not yet answered, as vscode-jsonrpc keys them (1 and "1" are one id). */
  private readonly pendingIds = new Set<string>();
  /** Called after each message let through. */
  onAdmit: () => void = () => undefined;

  constructor(private readonly refuse: (response: ResponseMessage) => void, private readonly debug: (text: string) => void) {
    super();
  }

  /**
   * Messages passed to vscode-jsonrpc so far, `$/cancelRequest` aside: vscode-jsonrpc acts on
   * a cancel at once when its request is running, and queues it otherwise.
   */
  get messagesAdmitted(): number {
    return this.admitted;
  }

  abstract override listen(callback: DataCallback): Disposable;
  /** Stops reading (the client blocks once the buffers fill) while too many requests are in flight. */
  abstract pause(): void;
  abstract resume(): void;

  /** The response to request `id` is out: the id may be used again. */
  answered(id: string | number): void {
    this.pendingIds.delete(String(id));
  }

  protected routes(callback: DataCallback): AdmissionRoutes {
    return {
      message: (message) => {
        if (!this.admit(message)) return;
        callback(message);
        this.onAdmit();
      },
      refused: this.refuse,
      debug: this.debug,
    };
  }

  private admit(message: Message): boolean {
    const { id, method, params } = message as { id?: unknown; method?: unknown; params?: { id?: unknown } };
    if (method === CANCEL_METHOD) {
      if (this.pendingIds.has(String(params?.id))) return true;
      this.debug(`ignored a message: ${CANCEL_METHOD} for ${JSON.stringify(params?.id)?.slice(0, 100)}, no such request in progress`);
      return false;
    }
    if (typeof id === 'string' || typeof id === 'number') {
      // vscode-jsonrpc would drop one of two queued requests with the same id, and mix up their cancellation.
      if (this.pendingIds.has(String(id))) {
        const text = `invalid request: id ${JSON.stringify(id).slice(0, 100)} is already used by a request in progress`;
        this.debug(`refused a message: ${text}`);
        this.refuse({ jsonrpc: '2.0', id: null, error: { code: RpcErrorCodes.InvalidRequest, message: text } });
        return false;
      }
      this.pendingIds.add(String(id));
    }
    this.admitted++;
    return true;
  }
}
