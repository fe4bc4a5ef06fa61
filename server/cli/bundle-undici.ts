/**
 * How the bundle loads undici's parts (build-bundle.ts): what they require at load time but use
 * rarely is required at first use instead. If undici's source no longer reads as expected, the
 * file is bundled as undici wrote it, with a build warning saying what now loads with it.
 */
import type * as esbuild from 'esbuild';
import { readFile } from 'node:fs/promises';

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

function rewrite(file: string, source: string): { contents: string; warnings: esbuild.PartialMessage[] } {
  const warnings: esbuild.PartialMessage[] = [];
  let contents = source;
  if (/[\\/]dispatcher[\\/]client\.js$/.test(file)) {
    if (contents.includes(H2_IMPORT)) contents = contents.replace(H2_IMPORT, H2_WHEN_USED);
    else warnings.push({ text: 'undici/lib/dispatcher/client.js changed: node:http2 loads with it' });
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
    build.onLoad({ filter: /[\\/]undici[\\/]lib[\\/].*\.js$/ }, async (args) => ({ ...rewrite(args.path, await readFile(args.path, 'utf8')), loader: 'js' }));
  },
};
