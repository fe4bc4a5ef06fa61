// The page: fetches the wasm layer of an OCI artifact through `layerpipe serve --listen ws://…`,
// compiles it while it streams, checks its digest with SubtleCrypto, then instantiates it and
// calls its exports. Plain browser JavaScript: it imports only the client's browser bundle.
import { WebSocketImageProxy } from './layerpipe-ws.mjs';

const $ = (id) => document.getElementById(id);

async function collect(stream) {
  const parts = [];
  let length = 0;
  for (const reader = stream.getReader(); ;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    length += value.byteLength;
  }
  const all = new Uint8Array(length);
  let at = 0;
  for (const part of parts) { all.set(part, at); at += part.byteLength; }
  return all;
}

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');

async function run() {
  // Served beside the page by serve-page.js (same origin): where the proxy is, and its token.
  const config = await (await fetch('config.json', { cache: 'no-store' })).json();
  const proxy = await WebSocketImageProxy.connect(config.url, config.token);
  $('what').textContent = `${config.reference} via ${config.url}`;
  const image = await proxy.openImage(config.reference);
  const layers = await proxy.getLayerInfo(image);
  const layer = layers.find((l) => l.mediaType === 'application/wasm' || l.mediaType === 'application/vnd.wasm.content.layer.v1+wasm');
  if (layer === undefined) throw new Error('the artifact has no wasm layer');
  const blob = await proxy.getBlob(image, layer.digest, {
    onProgress: (bytes, total) => {
      $('progress').value = total > 0 ? bytes / total : 0;
      $('bytes').textContent = `${bytes} / ${total} bytes`;
    },
  });
  const [forCompiler, forDigest] = blob.stream.tee();
  // The module compiles while its bytes arrive; it runs only once its digest is checked.
  const compiling = WebAssembly.compileStreaming(new Response(forCompiler, { headers: { 'Content-Type': 'application/wasm' } }));
  const hashing = collect(forDigest).then((bytes) => crypto.subtle.digest('SHA-256', bytes));
  const [module, digest] = await Promise.all([compiling, hashing, blob.finish()]);
  if (`sha256:${hex(digest)}` !== layer.digest) throw new Error(`digest mismatch: got sha256:${hex(digest)}, expected ${layer.digest}`);
  const { exports } = await WebAssembly.instantiate(module);
  $('result').textContent = `add(2, 40) = ${exports.add(2, 40)}; fib(20) = ${exports.fib(20)}; answer() = ${exports.answer()}; ${layer.size} bytes, digest verified`;
  await proxy.shutdown();
}

run().catch((err) => {
  $('result').textContent = `failed: ${err.message}`;
  $('result').className = 'failed';
});
