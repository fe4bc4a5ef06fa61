/**
 * The skopeo-compatible image-proxy wire (protocol 0.2.x), declared once.
 *
 * The server validates every request against METHODS and the TypeScript client
 * builds its calls from the same table; PROTOCOL.md describes it in prose. The build
 * writes it as dist/protocol/methods.json (emit-methods-json.ts), against which the
 * Python and Rust clients' tests check their own tables.
 */

/** Version answered by Initialize. Clients accept ^0.2.3, so this wire stays 0.2.x. */
export const PROTOCOL_VERSION = '0.2.8';

/** Largest request packet the server reads; replies other than GetLayerInfo stay below it too. */
export const MAX_MESSAGE_SIZE = 32 * 1024;

/** OpenImageOptional answers this image id when the image does not exist. */
export const SENTINEL_IMAGE_ID = 0;

/** JSON numbers above this are refused as integer arguments (JavaScript's safe range). */
export const MAX_JSON_INTEGER = Number.MAX_SAFE_INTEGER;

/** GetBlob's size when the caller does not know it. */
export const UNKNOWN_SIZE = -1;

/** `error_code` of a failed reply, and `code` in a GetRawBlob error-pipe message. */
export const ERROR_CODES = ['EPIPE', 'retryable', 'other'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Argument kinds:
 * - `string`: a JSON string;
 * - `uint`: a JSON number that is a non-negative integer no larger than MAX_JSON_INTEGER
 *   (image ids, pipe ids, sizes). An argument named `size` (GetBlob's) also takes
 *   UNKNOWN_SIZE, -1: the blob is then checked against its digest only, whatever its length.
 */
export type ArgKind = 'string' | 'uint';

/**
 * What travels beside the reply:
 * - `none`: pipeid 0, no fd;
 * - `pipe`: one read end and a non-zero pipeid to hand to FinishPipe;
 * - `dataAndErrorPipes`: two read ends (data, then error), pipeid 0, no FinishPipe;
 * - `noReply`: the server answers nothing (Shutdown).
 */
export type DataKind = 'none' | 'pipe' | 'dataAndErrorPipes' | 'noReply';

export interface MethodSpec<Name extends string = string, Args extends readonly ArgKind[] = readonly ArgKind[], Value = unknown> {
  readonly name: Name;
  /** Kinds of the positional arguments. */
  readonly args: Args;
  /** Names for the arguments, used in error messages: "expecting (imgid, digest)". */
  readonly argNames: { readonly [K in keyof Args]: string };
  readonly data: DataKind;
  /** Protocol version that introduced the method. */
  readonly since: string;
  /** Phantom: the type of `value` in a successful reply. */
  readonly valueType?: Value;
}

function method<Value>() {
  return <Name extends string, const Args extends readonly ArgKind[]>(
    name: Name,
    args: Args,
    argNames: { readonly [K in keyof Args]: string },
    data: DataKind,
    since: string,
  ): MethodSpec<Name, Args, Value> => ({ name, args, argNames, data, since });
}

/** One entry of GetLayerInfo's answer. */
export interface LayerInfo {
  digest: string;
  /** -1 when the source does not know it. */
  size: number;
  media_type: string;
}

export const METHODS = {
  Initialize: method<string>()('Initialize', [], [], 'none', '0.2.1'),
  OpenImage: method<number>()('OpenImage', ['string'], ['imageref'], 'none', '0.2.1'),
  OpenImageOptional: method<number>()('OpenImageOptional', ['string'], ['imageref'], 'none', '0.2.4'),
  CloseImage: method<null>()('CloseImage', ['uint'], ['imgid'], 'none', '0.2.1'),
  GetManifest: method<string>()('GetManifest', ['uint'], ['imgid'], 'pipe', '0.2.1'),
  GetFullConfig: method<null>()('GetFullConfig', ['uint'], ['imgid'], 'pipe', '0.2.3'),
  GetConfig: method<null>()('GetConfig', ['uint'], ['imgid'], 'pipe', '0.2.1'),
  GetBlob: method<number>()('GetBlob', ['uint', 'string', 'uint'], ['imgid', 'digest', 'size'], 'pipe', '0.2.1'),
  GetRawBlob: method<number>()('GetRawBlob', ['uint', 'string'], ['imgid', 'digest'], 'dataAndErrorPipes', '0.2.8'),
  GetLayerInfo: method<LayerInfo[]>()('GetLayerInfo', ['uint'], ['imgid'], 'none', '0.2.5'),
  GetLayerInfoPiped: method<null>()('GetLayerInfoPiped', ['uint'], ['imgid'], 'pipe', '0.2.7'),
  FinishPipe: method<null>()('FinishPipe', ['uint'], ['pipeid'], 'none', '0.2.1'),
  Shutdown: method<never>()('Shutdown', [], [], 'noReply', '0.2.1'),
} as const;

export type MethodName = keyof typeof METHODS;
export type AnyMethod = (typeof METHODS)[MethodName];

type ArgValue<K> = K extends 'string' ? string : K extends 'uint' ? number : never;
type ArgValues<A extends readonly ArgKind[]> = { -readonly [K in keyof A]: ArgValue<A[K]> };
/** The TypeScript tuple of a method's arguments. */
export type ArgsOf<M extends MethodSpec> = ArgValues<M['args']>;
/** The TypeScript type of a method's successful value. */
export type ValueOf<M extends MethodSpec> = M extends MethodSpec<string, readonly ArgKind[], infer V> ? V : never;

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(METHODS, name);
}

/** A request packet. */
export interface Request {
  method: string;
  args: unknown[];
}

/** A reply packet: all five keys are always present. */
export interface Reply {
  success: boolean;
  value: unknown;
  pipeid: number;
  error_code: ErrorCode | '';
  error: string;
}

/** The JSON object a GetRawBlob error pipe carries on failure. */
export interface RawBlobError {
  code: ErrorCode;
  message: string;
}

/** Compares dotted versions numerically: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
