/**
 * How the bundle loads undici's parts (build-bundle.ts): what they require at load time but use
 * rarely is required at first use instead. If undici's source no longer reads as expected, the
 * file is bundled as undici wrote it, with a build warning saying what now loads with it.
 */
import type * as esbuild from 'esbuild';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The Client loads its HTTP/2 half (and node:http2, the costliest built-in it needs) when it is
 * loaded, though only a connection that negotiates h2 uses it, and layerpipe never offers h2.
 */
const H2_IMPORT = "const connectH2 = require('./client-h2.js')";
const H2_WHEN_USED = "const connectH2 = (client, socket) => require('./client-h2.js')(client, socket)";

/**
 * undici checks invariants with `assert(value, message)` in every file, and node:assert loads its
 * assertion-error formatting and call tracking with it. In the bundle those files get an assert
 * that loads node:assert only when a check fails, and then throws its AssertionError as before.
 * A file that uses more of node:assert than the plain call keeps the real module.
 */
const ASSERT_IMPORT = "const assert = require('node:assert')";
const LAZY_ASSERT = 'layerpipe-undici-lazy-assert';
const LAZY_ASSERT_SOURCE = `'use strict'
module.exports = function assert (value, message) {
  if (!value) require('node:assert').ok(value, message === undefined ? 'undici: an internal check failed' : message)
}
`;

/**
 * undici's HTTP parser is WebAssembly kept in a JS module as base64 text, twice (with and without
 * SIMD): 144 KB of the first image's pack and of its code cache, read and deserialised at every
 * first image though one of the two is decoded once, at the first connection. In the bundle each
 * is a file of its own (writeParserWasm), read when undici asks for it.
 */
const PARSER_WASM = /[\\/]llhttp[\\/](llhttp(?:_simd)?)-wasm\.js$/;
const PARSER_WASM_MODULES = ['llhttp', 'llhttp_simd'] as const;
const parserWasmFile = (name: string): string => `${name}.wasm`;
const parserWasmSource = (name: string): string => `'use strict'
module.exports = require('node:fs').readFileSync(require('node:path').join(__dirname, ${JSON.stringify(parserWasmFile(name))}))
`;

/** Writes the parser's WebAssembly files next to the bundle's packs, decoded from undici's own modules. */
export function writeParserWasm(bundleDir: string): void {
  for (const name of PARSER_WASM_MODULES) {
    const bytes = require(`undici/lib/llhttp/${name}-wasm.js`) as unknown;
    if (!(bytes instanceof Uint8Array) || Buffer.from(bytes.subarray(0, 4)).toString('latin1') !== '\0asm') {
      throw new Error(`undici/lib/llhttp/${name}-wasm.js no longer exports WebAssembly bytes: see bundle-undici.ts`);
    }
    writeFileSync(path.join(bundleDir, parserWasmFile(name)), bytes);
  }
}

/**
 * The Client requires fetch's body module only to send a FormData body, which layerpipe never
 * sends; bundled, it would bring fetch's utilities and WebIDL (40 KB) into the pack. In the bundle
 * it is required from the installed undici instead, at that first use.
 */
const FETCH_BODY_IMPORT = "require('../web/fetch/body.js')";
const FETCH_BODY_INSTALLED = 'undici/lib/web/fetch/body.js';

/**
 * undici loads node:http (~1.5 ms of a first manifest, eight modules) for two things layerpipe
 * does not need at load: the default response-header limit, which the registry client sets
 * itself (createAgent), and a check that a stream being destroyed is node:http's
 * IncomingMessage, which no stream can be unless node:http was loaded for it. In the bundle both
 * ask node:http when they run, with the same result.
 */
const HTTP_DEFAULT_HEADER_LIMIT = `const getDefaultNodeMaxHeaderSize = http &&
  http.maxHeaderSize &&
  Number.isInteger(http.maxHeaderSize) &&
  http.maxHeaderSize > 0
  ? () => http.maxHeaderSize
  : () => { throw new InvalidArgumentError('http module not available or http.maxHeaderSize invalid') }`;
const HTTP_DEFAULT_HEADER_LIMIT_WHEN_USED = `const getDefaultNodeMaxHeaderSize = () => {
  const http = require('node:http')
  if (http && http.maxHeaderSize && Number.isInteger(http.maxHeaderSize) && http.maxHeaderSize > 0) return http.maxHeaderSize
  throw new InvalidArgumentError('http module not available or http.maxHeaderSize invalid')
}`;
const HTTP_IMPORT = "const http = require('node:http')\n";
const INCOMING_MESSAGE_IMPORT = "const { IncomingMessage } = require('node:http')\n";
const INCOMING_MESSAGE_CHECK = 'Object.getPrototypeOf(stream).constructor === IncomingMessage';
const INCOMING_MESSAGE_CHECK_WHEN_USED =
  "(Object.getPrototypeOf(stream).constructor?.name === 'IncomingMessage' && Object.getPrototypeOf(stream).constructor === require('node:http').IncomingMessage)";

/** `source` with every occurrence of each `from` replaced by its `to`; unchanged, with a warning, when any `from` is missing. */
function rewriteOrWarn(file: string, source: string, pairs: readonly (readonly [string, string])[], what: string, warnings: esbuild.PartialMessage[]): string {
  if (pairs.some(([from]) => !source.includes(from))) {
    warnings.push({ text: `${file} changed: ${what}` });
    return source;
  }
  return pairs.reduce((text, [from, to]) => text.replaceAll(from, to), source);
}

function rewrite(file: string, source: string): { contents: string; warnings: esbuild.PartialMessage[] } {
  const warnings: esbuild.PartialMessage[] = [];
  let contents = source;
  const wasm = PARSER_WASM.exec(file);
  if (wasm?.[1] !== undefined) return { contents: parserWasmSource(wasm[1]), warnings };
  if (/[\\/]dispatcher[\\/]client-h[12]\.js$/.test(file)) {
    contents = rewriteOrWarn(file, contents, [[FETCH_BODY_IMPORT, `require('${FETCH_BODY_INSTALLED}')`]], "fetch's body module is bundled with it", warnings);
  }
  if (/[\\/]dispatcher[\\/]client\.js$/.test(file)) {
    contents = rewriteOrWarn(file, contents, [[H2_IMPORT, H2_WHEN_USED]], 'node:http2 loads with it', warnings);
    contents = rewriteOrWarn(file, contents, [[HTTP_IMPORT, ''], [HTTP_DEFAULT_HEADER_LIMIT, HTTP_DEFAULT_HEADER_LIMIT_WHEN_USED]], 'node:http loads with it', warnings);
  }
  if (/[\\/]core[\\/]util\.js$/.test(file)) {
    contents = rewriteOrWarn(file, contents, [[INCOMING_MESSAGE_IMPORT, ''], [INCOMING_MESSAGE_CHECK, INCOMING_MESSAGE_CHECK_WHEN_USED]], 'node:http loads with it', warnings);
  }
  if (contents.includes(ASSERT_IMPORT)) {
    if (/\bassert\.[A-Za-z]/.test(contents)) warnings.push({ text: `${file} uses more of node:assert than assert(): node:assert loads with it` });
    else contents = contents.replace(ASSERT_IMPORT, `const assert = require('${LAZY_ASSERT}')`);
  }
  return { contents, warnings };
}

export const undiciLoading: esbuild.Plugin = {
  name: 'undici-loading',
  setup(build) {
    build.onResolve({ filter: new RegExp(`^${LAZY_ASSERT}$`) }, (args) => ({ path: args.path, namespace: LAZY_ASSERT }));
    build.onLoad({ filter: /.*/, namespace: LAZY_ASSERT }, () => ({ contents: LAZY_ASSERT_SOURCE, loader: 'js' }));
    build.onResolve({ filter: new RegExp(`^${FETCH_BODY_INSTALLED.replaceAll('.', '\\.')}$`) }, (args) => ({ path: args.path, external: true }));
    build.onLoad({ filter: /[\\/]undici[\\/]lib[\\/].*\.js$/ }, async (args) => ({ ...rewrite(args.path, await readFile(args.path, 'utf8')), loader: 'js' }));
  },
};
