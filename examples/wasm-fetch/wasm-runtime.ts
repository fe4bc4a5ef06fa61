/**
 * The few WebAssembly JS API calls the example makes, typed here. The repo's tsconfig has
 * lib ES2022 without DOM, and @types/node 20 does not declare the WebAssembly global, so it
 * is reached through globalThis with local types rather than by adding a program-wide lib.
 */
import { InvalidArgumentError, UnsupportedError } from '../../protocol/errors';

/** A compiled module (opaque here). */
export interface WasmModule {
  readonly [Symbol.toStringTag]: string;
}

export type WasmExternKind = 'function' | 'table' | 'memory' | 'global' | 'tag';

export interface WasmExportDescriptor {
  readonly name: string;
  readonly kind: WasmExternKind;
}

export interface WasmImportDescriptor {
  readonly module: string;
  readonly name: string;
  readonly kind: WasmExternKind;
}

interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  /** With a Module (not bytes), instantiate() resolves to the Instance alone. */
  instantiate(module: WasmModule, imports: Record<string, Record<string, unknown>>): Promise<WasmInstance>;
  readonly Module: {
    exports(module: WasmModule): WasmExportDescriptor[];
    imports(module: WasmModule): WasmImportDescriptor[];
  };
}

const wasmApi = (): WasmApi => {
  const api = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  if (api === undefined) throw new UnsupportedError('this JavaScript runtime has no WebAssembly');
  return api;
};

/** Compiles module bytes; a malformed module is an UnsupportedError naming `what`. */
export async function compileWasm(bytes: Uint8Array, what: string): Promise<WasmModule> {
  try {
    return await wasmApi().compile(bytes);
  } catch (err) {
    throw new UnsupportedError(`${what} is not a valid WebAssembly module: ${(err as Error).message}`, { cause: err });
  }
}

export function wasmExports(module: WasmModule): WasmExportDescriptor[] {
  return wasmApi().Module.exports(module);
}

export function wasmImports(module: WasmModule): WasmImportDescriptor[] {
  return wasmApi().Module.imports(module);
}

/** A numeric argument as the export takes it: a JS number, or a BigInt for i64 parameters. */
export type WasmNumber = number | bigint;

/**
 * Instantiates `module` with an empty import object (so no WASI, no host functions) and calls
 * its function export `exportName`. Refuses modules that import anything, unknown exports and
 * a wrong argument count before calling, so mistakes read as such rather than as traps.
 */
export async function callExport(module: WasmModule, exportName: string, args: readonly WasmNumber[]): Promise<unknown> {
  const imports = wasmImports(module);
  if (imports.length > 0) {
    const listed = imports.map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ');
    throw new UnsupportedError(`the module imports ${listed}; this example instantiates with no imports (no WASI)`);
  }
  const exported = wasmExports(module);
  const descriptor = exported.find((e) => e.name === exportName);
  if (descriptor === undefined) {
    const names = exported.filter((e) => e.kind === 'function').map((e) => e.name);
    throw new InvalidArgumentError(`the module has no export ${JSON.stringify(exportName)}; its functions: ${names.join(', ') || '(none)'}`);
  }
  if (descriptor.kind !== 'function') throw new InvalidArgumentError(`export ${JSON.stringify(exportName)} is a ${descriptor.kind}, not a function`);
  const instance = await wasmApi().instantiate(module, {});
  const fn = instance.exports[exportName] as (...a: WasmNumber[]) => unknown;
  // An exported function's length is its parameter count.
  if (fn.length !== args.length) {
    throw new InvalidArgumentError(`${exportName} takes ${fn.length} argument(s), ${args.length} given`);
  }
  return fn(...args);
}

/** Parses "1,2,-3" (BigInts as "5n", for i64 parameters); empty string means no arguments. */
export function parseNumericArgs(text: string): WasmNumber[] {
  if (text.trim() === '') return [];
  return text.split(',').map((part) => {
    const s = part.trim();
    if (/^-?\d+n$/.test(s)) return BigInt(s.slice(0, -1));
    const n = Number(s);
    if (s === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`not a number: ${JSON.stringify(part)}`);
    return n;
  });
}
