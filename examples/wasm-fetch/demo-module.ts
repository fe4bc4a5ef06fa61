/**
 * A tiny WebAssembly module assembled byte by byte, so the example needs no wasm toolchain.
 * It imports nothing and exports:
 *   add(a: i32, b: i32) -> i32    a + b
 *   fib(n: i32) -> i32            the n-th Fibonacci number (fib(0) = 0, fib(1) = 1), iterative
 *   answer() -> i32               42
 *
 * The equivalent text format:
 *   (module
 *     (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
 *     (func (export "fib") (param $n i32) (result i32) (local $a i32) (local $b i32) (local $t i32)
 *       i32.const 1 local.set $b
 *       block loop
 *         local.get $n i32.eqz br_if 1
 *         local.get $a local.get $b i32.add local.set $t
 *         local.get $b local.set $a  local.get $t local.set $b
 *         local.get $n i32.const 1 i32.sub local.set $n
 *         br 0
 *       end end
 *       local.get $a)
 *     (func (export "answer") (result i32) i32.const 42))
 */

// Binary format constants (WebAssembly core spec, "Binary Format").
const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const VERSION = [0x01, 0x00, 0x00, 0x00];
const SECTION = { type: 1, function: 3, export: 7, code: 10 } as const;
const FUNC_TYPE = 0x60;
const I32 = 0x7f;
const EXPORT_FUNC = 0x00;
const BLOCK_EMPTY = 0x40;
const OP = {
  block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b,
  localGet: 0x20, localSet: 0x21, i32Const: 0x41, i32Eqz: 0x45, i32Add: 0x6a, i32Sub: 0x6b,
} as const;

/** Unsigned LEB128, as the binary format encodes every length and index. */
export function uleb128(value: number): number[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`uleb128: ${value} is not an unsigned integer`);
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer (the immediate of i32.const). */
export function sleb128(value: number): number[] {
  if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) throw new RangeError(`sleb128: ${value} is not an i32`);
  const out: number[] = [];
  let rest = value;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const vec = (items: readonly number[][]): number[] => [...uleb128(items.length), ...items.flat()];
const name = (text: string): number[] => {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...uleb128(bytes.length), ...bytes];
};
const section = (id: number, payload: readonly number[]): number[] => [id, ...uleb128(payload.length), ...payload];

interface FunctionDef {
  readonly exportName: string;
  readonly params: number;
  readonly results: number;
  /** Extra i32 locals after the parameters. */
  readonly locals: number;
  /** Instructions, without the final `end`. */
  readonly body: readonly number[];
}

const FUNCTIONS: readonly FunctionDef[] = [
  {
    exportName: 'add', params: 2, results: 1, locals: 0,
    body: [OP.localGet, 0, OP.localGet, 1, OP.i32Add],
  },
  {
    // locals: 0 = n (param), 1 = a, 2 = b, 3 = t
    exportName: 'fib', params: 1, results: 1, locals: 3,
    body: [
      OP.i32Const, ...sleb128(1), OP.localSet, 2,
      OP.block, BLOCK_EMPTY,
      OP.loop, BLOCK_EMPTY,
      OP.localGet, 0, OP.i32Eqz, OP.brIf, 1,
      OP.localGet, 1, OP.localGet, 2, OP.i32Add, OP.localSet, 3,
      OP.localGet, 2, OP.localSet, 1,
      OP.localGet, 3, OP.localSet, 2,
      OP.localGet, 0, OP.i32Const, ...sleb128(1), OP.i32Sub, OP.localSet, 0,
      OP.br, 0,
      OP.end,
      OP.end,
      OP.localGet, 1,
    ],
  },
  {
    exportName: 'answer', params: 0, results: 1, locals: 0,
    body: [OP.i32Const, ...sleb128(42)],
  },
];

/** The demo module's bytes (a few dozen; the same on every call). */
export function demoWasmModule(): Buffer {
  // One type per function keeps indexes trivial: function i has type i.
  const types = FUNCTIONS.map((f) => [FUNC_TYPE, ...vec(Array.from({ length: f.params }, () => [I32])), ...vec(Array.from({ length: f.results }, () => [I32]))]);
  const functionIndexes = FUNCTIONS.map((_, i) => uleb128(i));
  const exports = FUNCTIONS.map((f, i) => [...name(f.exportName), EXPORT_FUNC, ...uleb128(i)]);
  const bodies = FUNCTIONS.map((f) => {
    const localDecls = f.locals === 0 ? vec([]) : vec([[...uleb128(f.locals), I32]]);
    const code = [...localDecls, ...f.body, OP.end];
    return [...uleb128(code.length), ...code];
  });
  return Buffer.from([
    ...MAGIC, ...VERSION,
    ...section(SECTION.type, vec(types)),
    ...section(SECTION.function, vec(functionIndexes)),
    ...section(SECTION.export, vec(exports)),
    ...section(SECTION.code, vec(bodies)),
  ]);
}

/** What the demo module's exports compute, for tests and the README. */
export const DEMO_EXPORTS = {
  add: (a: number, b: number): number => (a + b) | 0,
  fib: (n: number): number => {
    let a = 0;
    let b = 1;
    for (let i = 0; i < n; i++) [a, b] = [b, (a + b) | 0];
    return a;
  },
  answer: (): number => 42,
} as const;
