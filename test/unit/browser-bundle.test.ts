/**
 * The browser client bundles for browsers with nothing from Node: esbuild with platform
 * "browser" (as `npm run build:browser`) resolves no Node builtin and no Node-only module, and
 * the bundle references neither `require` nor `process` nor `Buffer`.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { build } from 'esbuild';

const ROOT = path.resolve(__dirname, '..', '..', '..');

test('the WebSocket client bundles for browsers without Node APIs', async () => {
  const result = await build({
    entryPoints: [path.join(ROOT, 'clients', 'typescript', 'browser', 'ws-client.ts')],
    bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, metafile: true, logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(inputs.some((i) => i.endsWith('ws-client.ts')));
  assert.deepEqual(inputs.filter((i) => i.startsWith('node:') || /vscode-jsonrpc\/lib\/node\//.test(i) || /\/ws\/lib\//.test(i)), []);
  const code = result.outputFiles[0]!.text;
  assert.doesNotMatch(code, /\brequire\(|\bprocess\.|\bBuffer\./);
  assert.match(code, /export\s*\{[^}]*WebSocketImageProxy/);
});
