/**
 * Protocol 1.0: JSON-RPC 2.0, declared once. Every request and notification is a typed
 * constant that the server and the TypeScript client both import; PROTOCOL.md describes the
 * same contract in prose, and the build writes PARAMS/RESULT shapes to methods.json for the
 * Python and Rust clients' tests. Names here are fixed: fields may be added, never renamed.
 *
 * Imports only vscode-jsonrpc's message types (browser-safe), not its index. What tells a 1.0
 * message apart, which a proxy needs before it knows it will speak 1.0, is in jsonrpc-message.ts.
 */
import { NotificationType, ParameterStructures, RequestType } from 'vscode-jsonrpc/lib/common/messages';

export { isJsonRpcMessage, MAX_MESSAGE_SIZE_1 } from './jsonrpc-message';

/** Answered by Initialize. */
export const PROTOCOL_VERSION_1 = '1.0.0';
/** The major version this wire speaks: a client asking for "1.0" or "1.x" is served. */
export const PROTOCOL_MAJOR_1 = 1;

/** Bytes the server may send in-band for one transfer before the client grants more credit. */
export const DEFAULT_STREAM_WINDOW = 1024 * 1024;
/** Bounds on the window a client may ask for at Initialize (`window`). */
export const MIN_STREAM_WINDOW = 64 * 1024;
export const MAX_STREAM_WINDOW = 64 * 1024 * 1024;
/** Largest decoded chunk in one `transfer/data` notification. */
export const MAX_STREAM_CHUNK = 256 * 1024;
/** `transfer/progress` is sent at most this often per transfer. */
export const PROGRESS_INTERVAL_MS = 100;

/**
 * How a transfer's bytes reach the client:
 * - `fd`: the read end of a pipe on the response packet (SEQPACKET connections only);
 * - `fifo`: a FIFO path in a private 0700 directory (local clients only);
 * - `stream`: in-band `transfer/data` notifications under a credit window.
 */
export const PAYLOAD_KINDS = ['fd', 'fifo', 'stream'] as const;
export type PayloadKind = (typeof PAYLOAD_KINDS)[number];

// ---------------------------------------------------------------- errors

/**
 * JSON-RPC error codes. The first five are JSON-RPC 2.0's own; the others are layerpipe's,
 * in the range JSON-RPC leaves to servers. `Cancelled` is vscode-jsonrpc's RequestCancelled,
 * so a client that knows LSP reads it as cancellation too.
 */
export const RpcErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Anything else the server could not do (data.error_code "other"). */
  ServerError: -32000,
  ImageNotFound: -32001,
  AuthenticationFailed: -32002,
  Retryable: -32003,
  VerificationFailed: -32004,
  BrokenPipe: -32005,
  PolicyDenied: -32006,
  NotInitialized: -32007,
  Cancelled: -32800,
} as const;
export type RpcErrorName = keyof typeof RpcErrorCodes;
export type RpcErrorCode = (typeof RpcErrorCodes)[RpcErrorName];

/** `data` of every error response and of `transfer/end`'s error. */
export interface RpcErrorData {
  /** The 0.2.x classification: "EPIPE", "retryable" or "other". */
  readonly error_code: 'EPIPE' | 'retryable' | 'other';
  /** The stable layerpipe error code (protocol/errors.ts), e.g. "LP_ERR_DIGEST_MISMATCH". */
  readonly kind?: string;
}

/** A JSON-RPC error object as it travels (in responses and in `transfer/end`). */
export interface RpcError {
  readonly code: number;
  readonly message: string;
  readonly data?: RpcErrorData;
}

// ---------------------------------------------------------------- shapes

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface InitializeParams {
  /** "1.0" (any 1.x is served). */
  readonly protocolVersion: string;
  /** The client's preference order. Omitted: ["fd", "fifo", "stream"] filtered by what the connection can do. */
  readonly payloads?: readonly PayloadKind[];
  /** In-band window in bytes (stream payloads), clamped to [MIN_STREAM_WINDOW, MAX_STREAM_WINDOW]. */
  readonly window?: number;
}
export interface InitializeResult {
  readonly protocolVersion: string;
  readonly server: { readonly name: 'layerpipe'; readonly version: string };
  readonly methods: readonly string[];
  readonly payload: PayloadKind;
  /** The in-band window granted (stream payloads). */
  readonly window: number;
}

export interface ReferenceParams { readonly reference: string }
export interface ImageParams { readonly image: number }
export interface ImageResult { readonly image: number }
export interface OptionalImageResult { readonly image: number | null }

export interface GetManifestParams {
  readonly image: number;
  /** The manifest or index exactly as stored, with its own digest. */
  readonly raw?: boolean;
  /** Pick this instance of a list instead of the one chosen at OpenImage. */
  readonly platform?: Platform;
}
export interface ManifestResult {
  readonly digest: string;
  readonly mediaType: string;
  /** Base64 of the exact bytes. */
  readonly data: string;
}

export interface Instance {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  readonly platform: Platform | null;
}
export interface ListInstancesResult { readonly instances: readonly Instance[] }
export interface ListTagsResult { readonly tags: readonly string[] }

export interface FullConfigResult { readonly digest: string; readonly data: string }
export interface ConfigResult { readonly data: string }

export interface Layer { readonly digest: string; readonly size: number; readonly mediaType: string }
export interface LayerInfoResult { readonly layers: readonly Layer[] }

export interface GetBlobParams {
  readonly image: number;
  readonly digest: string;
  /** Expected size; omitted or -1: the manifest's. */
  readonly size?: number;
  /** Send `transfer/progress` notifications. */
  readonly progress?: boolean;
}
export interface GetRawBlobParams {
  readonly image: number;
  readonly digest: string;
  /** First byte to send (a registry gets a Range request). */
  readonly offset?: number;
  /** Bytes to send from `offset`; omitted: to the end. */
  readonly length?: number;
}
export interface TransferResult {
  readonly transfer: number;
  /** Bytes that will be sent, -1 when unknown. */
  readonly size: number;
  /** `fifo` payloads: the FIFO to open for reading. */
  readonly path?: string;
}
export interface TransferParams { readonly transfer: number }

export interface SignatureInfo {
  readonly format: 'simple-signing' | 'sigstore';
  readonly identity: string | null;
  readonly keyId?: string;
  readonly certificateSubject?: string;
  readonly verified: boolean;
  readonly reason?: string;
}
export interface SignaturesResult { readonly signatures: readonly SignatureInfo[] }

export interface TransferDataParams {
  readonly transfer: number;
  /** Base64 of the next bytes, in order. */
  readonly data: string;
}
export interface TransferEndParams {
  readonly transfer: number;
  /** Absent when every byte was sent and verified. */
  readonly error?: RpcError;
}
export interface TransferCreditParams { readonly transfer: number; readonly bytes: number }
export interface TransferProgressParams { readonly transfer: number; readonly bytes: number; readonly total: number }

// ---------------------------------------------------------------- requests and notifications

const request = <P, R>(method: string): RequestType<P, R, RpcErrorData> => new RequestType<P, R, RpcErrorData>(method, ParameterStructures.byName);
const notification = <P>(method: string): NotificationType<P> => new NotificationType<P>(method, ParameterStructures.byName);

export const Requests1 = {
  Initialize: request<InitializeParams, InitializeResult>('Initialize'),
  OpenImage: request<ReferenceParams, ImageResult>('OpenImage'),
  OpenImageOptional: request<ReferenceParams, OptionalImageResult>('OpenImageOptional'),
  CloseImage: request<ImageParams, null>('CloseImage'),
  GetManifest: request<GetManifestParams, ManifestResult>('GetManifest'),
  ListInstances: request<ImageParams, ListInstancesResult>('ListInstances'),
  ListTags: request<ReferenceParams, ListTagsResult>('ListTags'),
  GetFullConfig: request<ImageParams, FullConfigResult>('GetFullConfig'),
  GetConfig: request<ImageParams, ConfigResult>('GetConfig'),
  GetLayerInfo: request<ImageParams, LayerInfoResult>('GetLayerInfo'),
  GetSignatures: request<ImageParams, SignaturesResult>('GetSignatures'),
  GetBlob: request<GetBlobParams, TransferResult>('GetBlob'),
  GetRawBlob: request<GetRawBlobParams, TransferResult>('GetRawBlob'),
  FinishTransfer: request<TransferParams, null>('FinishTransfer'),
  CancelTransfer: request<TransferParams, null>('CancelTransfer'),
  Shutdown: request<Record<string, never> | undefined, null>('Shutdown'),
} as const;
export type Method1 = keyof typeof Requests1;

export const Notifications1 = {
  /** Server → client: the next in-band bytes of a transfer. */
  TransferData: notification<TransferDataParams>('transfer/data'),
  /** Server → client: a transfer's last message, in order after its data. */
  TransferEnd: notification<TransferEndParams>('transfer/end'),
  /** Client → server: room for `bytes` more decoded bytes of a stream transfer. */
  TransferCredit: notification<TransferCreditParams>('transfer/credit'),
  /** Server → client: bytes sent so far (GetBlob with progress), at most every PROGRESS_INTERVAL_MS. */
  TransferProgress: notification<TransferProgressParams>('transfer/progress'),
} as const;

// ---------------------------------------------------------------- parameter schemas

/**
 * Kinds of a parameter: `uint` is a non-negative safe integer, `int` any safe integer,
 * `platform` an object {os, architecture, variant?} of strings. A trailing `?` marks it optional.
 * The server checks every request against these (unknown members are refused, -32602).
 */
export type ParamKind = 'string' | 'uint' | 'int' | 'boolean' | 'platform' | 'payloads';
export type ParamSpec = ParamKind | `${ParamKind}?`;

export const PARAMS_1: { readonly [M in Method1]: Readonly<Record<string, ParamSpec>> } = {
  Initialize: { protocolVersion: 'string', payloads: 'payloads?', window: 'uint?' },
  OpenImage: { reference: 'string' },
  OpenImageOptional: { reference: 'string' },
  CloseImage: { image: 'uint' },
  GetManifest: { image: 'uint', raw: 'boolean?', platform: 'platform?' },
  ListInstances: { image: 'uint' },
  ListTags: { reference: 'string' },
  GetFullConfig: { image: 'uint' },
  GetConfig: { image: 'uint' },
  GetLayerInfo: { image: 'uint' },
  GetSignatures: { image: 'uint' },
  GetBlob: { image: 'uint', digest: 'string', size: 'int?', progress: 'boolean?' },
  GetRawBlob: { image: 'uint', digest: 'string', offset: 'uint?', length: 'uint?' },
  FinishTransfer: { transfer: 'uint' },
  CancelTransfer: { transfer: 'uint' },
  Shutdown: {},
};

/** Methods whose result is a TransferResult: their bytes travel by the session's payload kind. */
export const TRANSFER_METHODS_1: readonly Method1[] = ['GetBlob', 'GetRawBlob'];

/** Methods answered before Initialize (everything else gets NotInitialized). */
export const PRE_INITIALIZE_METHODS_1: readonly Method1[] = ['Initialize', 'Shutdown'];

/** The params and result types of a 1.0 request, for code generic over methods. */
export type ParamsOf1<M extends Method1> = (typeof Requests1)[M] extends RequestType<infer P, unknown, RpcErrorData> ? P : never;
export type ResultOf1<M extends Method1> = (typeof Requests1)[M] extends RequestType<unknown, infer R, RpcErrorData> ? R : never;
