/**
 * Writes the wire's table (protocol/methods.ts) as JSON, for the Python and Rust clients'
 * tests to compare their own tables against: run by `npm run build` / `prepare` after tsc.
 *
 *   node dist/protocol/emit-methods-json.js [OUTPUT]   # default: dist/protocol/methods.json
 *
 * Prints the path written.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  ERROR_CODES, MAX_JSON_INTEGER, MAX_MESSAGE_SIZE, METHODS, PROTOCOL_VERSION, SENTINEL_IMAGE_ID,
  type ArgKind, type DataKind, type MethodName,
} from './methods';
import {
  DEFAULT_STREAM_WINDOW, MAX_MESSAGE_SIZE_1, MAX_STREAM_CHUNK, MAX_STREAM_WINDOW, MIN_STREAM_WINDOW, Notifications1,
  PARAMS_1, PAYLOAD_KINDS, PROTOCOL_VERSION_1, RpcErrorCodes, TRANSFER_METHODS_1, type Method1, type ParamSpec,
} from './jsonrpc';

/** One method as the JSON carries it. */
export interface MethodJson {
  name: MethodName;
  args: readonly ArgKind[];
  argNames: readonly string[];
  data: DataKind;
  since: string;
}

/** Protocol 1.0 (protocol/jsonrpc.ts) as the JSON carries it. */
export interface Protocol1Json {
  PROTOCOL_VERSION: string;
  MAX_MESSAGE_SIZE: number;
  DEFAULT_STREAM_WINDOW: number;
  MIN_STREAM_WINDOW: number;
  MAX_STREAM_WINDOW: number;
  MAX_STREAM_CHUNK: number;
  PAYLOAD_KINDS: readonly string[];
  /** Each method's params by name: kind, with a trailing "?" when optional. */
  PARAMS: { readonly [M in Method1]: Readonly<Record<string, ParamSpec>> };
  TRANSFER_METHODS: readonly Method1[];
  /** Notification names by their constant's name (TransferData: "transfer/data", ...). */
  NOTIFICATIONS: Record<string, string>;
  ERROR_CODES: Record<string, number>;
}

export interface MethodsJson {
  PROTOCOL_VERSION: string;
  MAX_MESSAGE_SIZE: number;
  SENTINEL_IMAGE_ID: number;
  MAX_JSON_INTEGER: number;
  ERROR_CODES: readonly string[];
  /** In declaration order. */
  METHODS: MethodJson[];
  PROTOCOL_1: Protocol1Json;
}

function protocol1Json(): Protocol1Json {
  return {
    PROTOCOL_VERSION: PROTOCOL_VERSION_1,
    MAX_MESSAGE_SIZE: MAX_MESSAGE_SIZE_1,
    DEFAULT_STREAM_WINDOW,
    MIN_STREAM_WINDOW,
    MAX_STREAM_WINDOW,
    MAX_STREAM_CHUNK,
    PAYLOAD_KINDS,
    PARAMS: PARAMS_1,
    TRANSFER_METHODS: TRANSFER_METHODS_1,
    NOTIFICATIONS: Object.fromEntries(Object.entries(Notifications1).map(([name, type]) => [name, type.method])),
    ERROR_CODES: { ...RpcErrorCodes },
  };
}

export function methodsJson(): MethodsJson {
  return {
    PROTOCOL_VERSION,
    MAX_MESSAGE_SIZE,
    SENTINEL_IMAGE_ID,
    MAX_JSON_INTEGER,
    ERROR_CODES,
    METHODS: Object.values(METHODS).map((m) => ({
      name: m.name,
      args: m.args,
      argNames: m.argNames,
      data: m.data,
      since: m.since,
    })),
    PROTOCOL_1: protocol1Json(),
  };
}

/** dist/protocol/methods.json: this file runs as dist/protocol/emit-methods-json.js. */
export const DEFAULT_OUTPUT = path.join(__dirname, 'methods.json');

if (require.main === module) {
  const output = path.resolve(process.argv[2] ?? DEFAULT_OUTPUT);
  writeFileSync(output, `${JSON.stringify(methodsJson(), null, 2)}\n`);
  console.log(output);
}
