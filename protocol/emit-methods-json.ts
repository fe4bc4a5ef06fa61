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

/** One method as the JSON carries it. */
export interface MethodJson {
  name: MethodName;
  args: readonly ArgKind[];
  argNames: readonly string[];
  data: DataKind;
  since: string;
}

export interface MethodsJson {
  PROTOCOL_VERSION: string;
  MAX_MESSAGE_SIZE: number;
  SENTINEL_IMAGE_ID: number;
  MAX_JSON_INTEGER: number;
  ERROR_CODES: readonly string[];
  /** In declaration order. */
  METHODS: MethodJson[];
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
  };
}

/** dist/protocol/methods.json: this file runs as dist/protocol/emit-methods-json.js. */
export const DEFAULT_OUTPUT = path.join(__dirname, 'methods.json');

if (require.main === module) {
  const output = path.resolve(process.argv[2] ?? DEFAULT_OUTPUT);
  writeFileSync(output, `${JSON.stringify(methodsJson(), null, 2)}\n`);
  console.log(output);
}
