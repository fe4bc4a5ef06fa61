/**
 * examples/wasm-fetch: a WebAssembly module stored as an OCI artifact (empty or wasm config,
 * both wasm layer media types), fetched through the real bin/layerpipe with the TypeScript
 * client, verified, compiled and called. Also what layerpipe answers for an artifact
 * (OpenImage, GetManifest, GetLayerInfo accept it; GetFullConfig refuses it), damaged blobs,
 * images without a wasm layer, the two command-line programs, and skopeo 1.9.3 (no GetRawBlob)
 * as the oracle for the GetBlob path.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, ProxyError } from '../../clients/typescript';
import { blobFile, WASM_MEDIA_TYPES, writeWasmArtifact, type WrittenArtifact } from '../../examples/wasm-fetch/artifact';
import { DEMO_EXPORTS, demoWasmModule, sleb128, uleb128 } from '../../examples/wasm-fetch/demo-module';
import { fetchWasmModule, type BlobMethod } from '../../examples/wasm-fetch/fetch-wasm';
import { callExport, compileWasm, wasmExports } from '../../examples/wasm-fetch/wasm-runtime';
import { DigestMismatchError, InvalidArgumentError, UnsupportedError } from '../../protocol/errors';
import { makeLayer, writeOciImage } from '../harness/oci-builder';
import { proxyUnavailable } from '../harness/wire-client-suite';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-wasm-'));
const layout = path.join(tmp, 'layout');
const ref = (name: string, dir = layout) => `oci:${dir}:${name}`;
const FETCH_JS = path.resolve(__dirname, '..', '..', 'examples', 'wasm-fetch', 'fetch-wasm.js');
const MAKE_JS = path.resolve(__dirname, '..', '..', 'examples', 'wasm-fetch', 'make-artifact.js');

const demo = demoWasmModule();
/** The demo module plus a 1 MiB custom section: valid wasm, larger than any pipe buffer. */
const big = Buffer.concat([demo, customSection('padding', randomBytes(1024 * 1024))]);
/** A module that needs a host function: (import "env" "log" (func)). */
const importing = Buffer.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: [() -> ()]
  0x02, 0x0b, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x03, 0x6c, 0x6f, 0x67, 0x00, 0x00, // import env.log: func type 0
]);

function customSection(name: string, payload: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(uleb128(name.length)), Buffer.from(name), payload]);
  return Buffer.concat([Buffer.from([0, ...uleb128(body.length)]), body]);
}

const artifacts: Record<string, WrittenArtifact> = {};
let corruptLayer = '';
let truncatedLayer = '';
const imageDir = path.join(tmp, 'container-image');

before(() => {
  artifacts.plain = writeWasmArtifact(layout, demo, { ref: 'plain' });
  artifacts.wasmConfig = writeWasmArtifact(layout, demo, { ref: 'wasm-config', config: 'wasm', layerMediaType: WASM_MEDIA_TYPES.legacyLayer });
  artifacts.big = writeWasmArtifact(layout, big, { ref: 'big', config: 'wasm' });
  artifacts.textOnly = writeWasmArtifact(layout, Buffer.from('not a module\n'), { ref: 'text-only', layerMediaType: 'text/plain' });
  artifacts.garbage = writeWasmArtifact(layout, Buffer.from('\0asm but nothing valid after it'), { ref: 'garbage' });
  artifacts.importing = writeWasmArtifact(layout, importing, { ref: 'importing' });

  // Damaged copies live in layouts of their own so they do not touch the shared demo blob.
  const corrupt = writeWasmArtifact(path.join(tmp, 'corrupt'), big, { ref: 'latest' });
  corruptLayer = corrupt.layer.digest;
  const file = blobFile(corrupt.layoutDir, corrupt.layer.digest);
  const bytes = readFileSync(file);
  bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff; // same length, wrong content
  writeFileSync(file, bytes);
  const truncated = writeWasmArtifact(path.join(tmp, 'truncated'), demo, { ref: 'latest' });
  truncatedLayer = truncated.layer.digest;
  truncateSync(blobFile(truncated.layoutDir, truncated.layer.digest), demo.length - 10);

  writeOciImage(imageDir, { layers: [makeLayer({ 'hello.txt': 'hello\n' })] }, 'latest');
});

after(() => rmSync(tmp, { recursive: true, force: true }));

async function withProxy<T>(fn: (p: ImageProxy) => Promise<T>, command?: string): Promise<T> {
  const proxy = await ImageProxy.spawn(command === undefined ? {} : { command });
  try {
    await proxy.initialize();
    return await fn(proxy);
  } finally {
    await proxy.close();
  }
}

describe('the hand-assembled demo module', () => {
  it('encodes LEB128 as the binary format wants', () => {
    assert.deepEqual(uleb128(0), [0]);
    assert.deepEqual(uleb128(127), [0x7f]);
    assert.deepEqual(uleb128(624485), [0xe5, 0x8e, 0x26]);
    assert.deepEqual(sleb128(-1), [0x7f]);
    assert.deepEqual(sleb128(64), [0xc0, 0x00]);
    assert.deepEqual(sleb128(-123456), [0xc0, 0xbb, 0x78]);
  });

  it('compiles and computes add, fib and answer', async () => {
    const module = await compileWasm(demo, 'demo');
    assert.deepEqual(wasmExports(module).map((e) => `${e.name}:${e.kind}`), ['add:function', 'fib:function', 'answer:function']);
    assert.equal(await callExport(module, 'add', [2, 40]), 42);
    assert.equal(await callExport(module, 'add', [0x7fffffff, 1]), -0x80000000, 'i32 wraps');
    for (const n of [0, 1, 2, 10, 30]) assert.equal(await callExport(module, 'fib', [n]), DEMO_EXPORTS.fib(n), `fib(${n})`);
    assert.equal(await callExport(module, 'answer', []), 42);
    await assert.rejects(callExport(module, 'mul', [1, 2]), (e: unknown) => e instanceof InvalidArgumentError && /no export "mul".*add, fib, answer/.test(e.message));
    await assert.rejects(callExport(module, 'add', [1]), (e: unknown) => e instanceof InvalidArgumentError && /add takes 2 argument\(s\), 1 given/.test(e.message));
  });
});

describe('layerpipe serves a wasm artifact', () => {
  for (const name of ['plain', 'wasmConfig'] as const) {
    it(`OpenImage, GetManifest and GetLayerInfo accept it; GetFullConfig refuses it (${name})`, () => withProxy(async (proxy) => {
      const a = artifacts[name]!;
      const id = await proxy.openImage(ref(a.ref));
      const manifest = await proxy.getManifest(id);
      assert.equal(manifest.digest, a.manifestDigest);
      assert.ok(manifest.bytes.equals(a.manifestBytes), 'an OCI artifact manifest comes back as stored');
      assert.deepEqual(await proxy.getLayerInfo(id), [{ digest: a.layer.digest, size: a.layer.size, media_type: a.layer.mediaType }]);
      await assert.rejects(proxy.getFullConfig(id), (e: unknown) =>
        e instanceof ProxyError && e.message.includes('artifact') && e.message.includes(a.config.mediaType));
      await proxy.closeImage(id);
    }));
  }
});

describe('fetchWasmModule through bin/layerpipe', () => {
  it('empty config, application/wasm: GetRawBlob, verified, add(2,40) = 42', () => withProxy(async (proxy) => {
    const fetched = await fetchWasmModule(proxy, ref('plain'));
    assert.equal(fetched.blobMethod, 'GetRawBlob');
    assert.equal(fetched.artifactType, WASM_MEDIA_TYPES.layer);
    assert.equal(fetched.manifestDigest, artifacts.plain!.manifestDigest);
    assert.deepEqual(fetched.layer, { mediaType: 'application/wasm', digest: artifacts.plain!.layer.digest, size: demo.length });
    assert.ok(fetched.bytes.equals(demo));
    assert.equal(await callExport(fetched.module, 'add', [2, 40]), 42);
    assert.equal(await callExport(fetched.module, 'fib', [10]), 55);
  }));

  it('wasm config, legacy layer type: GetBlob when asked', () => withProxy(async (proxy) => {
    const fetched = await fetchWasmModule(proxy, ref('wasm-config'), { blobMethod: 'verified' });
    assert.equal(fetched.blobMethod, 'GetBlob');
    assert.equal(fetched.artifactType, WASM_MEDIA_TYPES.config);
    assert.equal(fetched.layer.mediaType, WASM_MEDIA_TYPES.legacyLayer);
    assert.equal(await callExport(fetched.module, 'add', [-5, 3]), -2);
  }));

  for (const blobMethod of ['raw', 'verified'] as BlobMethod[]) {
    it(`streams a 1 MiB module (${blobMethod})`, () => withProxy(async (proxy) => {
      const fetched = await fetchWasmModule(proxy, ref('big'), { blobMethod });
      assert.ok(fetched.bytes.equals(big));
      assert.equal(await callExport(fetched.module, 'answer', []), 42);
    }));

    it(`a corrupted wasm blob is a digest error, and the proxy keeps serving (${blobMethod})`, () => withProxy(async (proxy) => {
      await assert.rejects(fetchWasmModule(proxy, ref('latest', path.join(tmp, 'corrupt')), { blobMethod }), (e: unknown) =>
        e instanceof DigestMismatchError && e.message.includes(`expected ${corruptLayer}, got sha256:`));
      const fetched = await fetchWasmModule(proxy, ref('plain'), { blobMethod });
      assert.equal(await callExport(fetched.module, 'add', [1, 1]), 2);
    }));

    it(`a truncated wasm blob is a size error (${blobMethod})`, () => withProxy(async (proxy) => {
      const sizes = blobMethod === 'raw'
        ? `the proxy reports ${demo.length - 10} bytes, the manifest declares ${demo.length}`
        : `got ${demo.length - 10} bytes, the manifest declares ${demo.length}`;
      await assert.rejects(fetchWasmModule(proxy, ref('latest', path.join(tmp, 'truncated')), { blobMethod }), (e: unknown) =>
        e instanceof DigestMismatchError && e.message.includes(truncatedLayer) && e.message.includes(sizes));
    }));
  }

  it('an artifact without a wasm layer: a clear error naming what it has', () => withProxy(async (proxy) => {
    await assert.rejects(fetchWasmModule(proxy, ref('text-only')), (e: unknown) =>
      e instanceof UnsupportedError &&
      e.message === `${ref('text-only')} has no WebAssembly layer (media type application/wasm or application/vnd.wasm.content.layer.v1+wasm); it has layers of type text/plain`);
  }));

  it('a container image: the same error, listing its tar layer type', () => withProxy(async (proxy) => {
    await assert.rejects(fetchWasmModule(proxy, `oci:${imageDir}:latest`), (e: unknown) =>
      e instanceof UnsupportedError && /has no WebAssembly layer .*; it has layers of type application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip$/.test(e.message));
  }));

  it('a wasm layer that does not compile, and a module that needs imports', () => withProxy(async (proxy) => {
    await assert.rejects(fetchWasmModule(proxy, ref('garbage')), (e: unknown) =>
      e instanceof UnsupportedError && e.message.startsWith(`wasm layer ${artifacts.garbage!.layer.digest} is not a valid WebAssembly module`));
    const fetched = await fetchWasmModule(proxy, ref('importing'));
    await assert.rejects(callExport(fetched.module, 'anything', []), (e: unknown) =>
      e instanceof UnsupportedError && e.message.includes('imports env.log (function)'));
  }));

  it('a missing ref is the proxy\'s error', () => withProxy(async (proxy) => {
    await assert.rejects(fetchWasmModule(proxy, ref('no-such-ref')), (e: unknown) => e instanceof ProxyError && /no-such-ref/.test(e.message));
  }));
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runNode(script: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the command-line programs', () => {
  it('make-artifact from a .wasm file, then fetch-wasm calls the export', async () => {
    const wasmFile = path.join(tmp, 'demo.wasm');
    const cliLayout = path.join(tmp, 'cli');
    const first = await runNode(MAKE_JS, [`oci:${cliLayout}:demo`, '--write-demo', wasmFile]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(readFileSync(wasmFile).equals(demo));
    const made = await runNode(MAKE_JS, [`oci:${cliLayout}:v1`, '--wasm', wasmFile, '--config', 'wasm', '--layer-type', WASM_MEDIA_TYPES.legacyLayer]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /layer {4}application\/vnd\.wasm\.content\.layer\.v1\+wasm sha256:[0-9a-f]{64} \(118 bytes\)/);

    const run = await runNode(FETCH_JS, [`oci:${cliLayout}:v1`, '--export', 'add', '--args', '2,40']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'add(2, 40) = 42\n');
    assert.match(run.stderr, /via GetRawBlob, protocol 0\.2\.8/);
    const fib = await runNode(FETCH_JS, [`oci:${cliLayout}:demo`, '--export=fib', '--args=20', '--blob-method', 'verified']);
    assert.equal(fib.stdout, 'fib(20) = 6765\n', fib.stderr);
    const listed = await runNode(FETCH_JS, [`oci:${cliLayout}:demo`]);
    assert.equal(listed.stdout, 'exports: add (function), fib (function), answer (function)\n', listed.stderr);
  });

  it('fetch-wasm fails with exit status 1 and a clear message', async () => {
    const noWasm = await runNode(FETCH_JS, [ref('text-only'), '--export', 'add']);
    assert.equal(noWasm.code, 1);
    assert.equal(noWasm.stdout, '');
    assert.match(noWasm.stderr, /^fetch-wasm: .* has no WebAssembly layer .* \[LP_ERR_UNSUPPORTED\]\n$/);
    const corrupt = await runNode(FETCH_JS, [ref('latest', path.join(tmp, 'corrupt')), '--export', 'answer']);
    assert.equal(corrupt.code, 1);
    assert.match(corrupt.stderr, /wasm layer digest mismatch: expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64} \[LP_ERR_DIGEST_MISMATCH\]/);
    const badArgs = await runNode(FETCH_JS, [ref('plain'), '--export', 'add', '--args', '2,x']);
    assert.equal(badArgs.code, 1);
    assert.match(badArgs.stderr, /not a number: "x"/);
    const bad = await runNode(MAKE_JS, [`oci:${tmp}/x:y`, '--wasm', path.join(layout, 'index.json')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /is not a WebAssembly binary/);
  });
});

describe('skopeo 1.9.3 as the proxy (wire 0.2.3: GetBlob, no GetRawBlob)', () => {
  const unavailable = proxyUnavailable('skopeo');
  const skip = unavailable === null ? false : process.env.CI === 'true' ? false : `${unavailable} (install skopeo)`;

  it('fetches the same module through GetBlob; GetManifest and GetFullConfig agree with layerpipe', { skip }, async () => {
    assert.equal(unavailable, null, unavailable ?? '');
    const viaSkopeo = await withProxy(async (proxy) => {
      const fetched = await fetchWasmModule(proxy, ref('wasm-config'));
      assert.equal(fetched.blobMethod, 'GetBlob');
      assert.equal(await callExport(fetched.module, 'add', [2, 40]), 42);
      const id = await proxy.openImage(ref('plain'));
      const manifest = await proxy.getManifest(id);
      const refusal = await proxy.getFullConfig(id).then(() => 'accepted', (e: Error) => e.message);
      return { manifest, refusal };
    }, 'skopeo');
    const viaLayerpipe = await withProxy(async (proxy) => {
      const id = await proxy.openImage(ref('plain'));
      const manifest = await proxy.getManifest(id);
      const refusal = await proxy.getFullConfig(id).then(() => 'accepted', (e: Error) => e.message);
      return { manifest, refusal };
    });
    assert.equal(viaLayerpipe.manifest.digest, viaSkopeo.manifest.digest);
    assert.ok(viaLayerpipe.manifest.bytes.equals(viaSkopeo.manifest.bytes));
    assert.equal(viaLayerpipe.refusal, viaSkopeo.refusal);
  });

  it('a corrupted blob through skopeo is the same digest error', { skip }, () => withProxy(async (proxy) => {
    await assert.rejects(fetchWasmModule(proxy, ref('latest', path.join(tmp, 'corrupt'))), (e: unknown) =>
      e instanceof DigestMismatchError && e.message.includes(`expected ${corruptLayer}`));
  }, 'skopeo'));
});
