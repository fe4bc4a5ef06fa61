/**
 * Protocol 1.0 over `layerpipe serve --listen ws://…`, through the browser client on Node's `ws`:
 * every method, overlapping transfers, cancellation, Shutdown, SIGTERM, and a unix --listen
 * beside the WebSocket one.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProxyError } from '../../clients/typescript/browser/ws-client';
import { RpcErrorCodes } from '../../protocol/jsonrpc';
import { randomLayer, writeOciImage, type BuiltLayer } from '../harness/oci-builder';
import { until } from '../harness/service';
import { connectWs, readAll, startWsService, type WsService } from '../harness/websocket-service';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('serve --listen ws://', () => {
  let root: string;
  let service: WsService;
  let small: BuiltLayer;
  let big: BuiltLayer;
  let reference: string;

  before(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'lp-ws-wire-'));
    small = randomLayer(3000, 'small.bin');
    big = randomLayer(12 * 1024 * 1024, 'big.bin');
    writeOciImage(path.join(root, 'layout'), { layers: [small, big] });
    reference = `oci:${path.join(root, 'layout')}:latest`;
    service = await startWsService({ args: ['--listen', `unix:${path.join(root, 'service.sock')}`] });
  });
  after(async () => {
    await service?.stop();
  });

  it('answers every image method and streams verified blobs as binary frames', async () => {
    const proxy = await connectWs(service);
    const image = await proxy.openImage(reference);
    const manifest = await proxy.getManifest(image);
    assert.equal(manifest.digest, sha256(manifest.bytes));
    const layers = await proxy.getLayerInfo(image);
    assert.deepEqual(layers.map((l) => l.digest), [small.digest, big.digest]);
    for (const method of ['ListInstances', 'GetFullConfig', 'GetConfig'] as const) {
      const result = await proxy.call<Record<string, unknown>>(method, { image });
      assert.equal(typeof result, 'object', method);
    }
    // Answered by the shared 1.0 methods, whatever they say (not built yet on every branch).
    await proxy.call('GetSignatures', { image }).catch((err: ProxyError) => assert.equal(typeof err.code, 'number'));
    await assert.rejects(proxy.call('ListTags', { reference }), ProxyError);
    assert.deepEqual(await proxy.call('OpenImageOptional', { reference: `oci:${path.join(root, 'layout')}:nosuchtag` }), { image: null });
    const progress: number[] = [];
    const blob = await proxy.getBlob(image, big.digest, { onProgress: (bytes) => progress.push(bytes) });
    assert.equal(blob.size, big.compressed.length);
    const [bytes] = await Promise.all([readAll(blob.stream), blob.finish()]);
    assert.equal(sha256(bytes), big.digest);
    assert.ok(progress.length > 0 && progress.at(-1) === big.compressed.length, `progress ${progress.join(',')}`);
    const raw = await proxy.call<{ transfer: number; size: number }>('GetRawBlob', { image, digest: small.digest, offset: 10, length: 100 });
    assert.equal(raw.size, 100);
    await proxy.call('FinishTransfer', { transfer: raw.transfer });
    await proxy.closeImage(image);
    await assert.rejects(proxy.getLayerInfo(image), (err: ProxyError) => err.code === RpcErrorCodes.InvalidParams || err.code === RpcErrorCodes.ServerError);
    await proxy.shutdown();
  });

  it('runs overlapping transfers, each intact', async () => {
    const proxy = await connectWs(service);
    const image = await proxy.openImage(reference);
    const blobs = await Promise.all(Array.from({ length: 6 }, (_, i) => proxy.getBlob(image, i % 2 === 0 ? big.digest : small.digest)));
    const results = await Promise.all(blobs.map(async (b) => (await Promise.all([readAll(b.stream), b.finish()]))[0]));
    results.forEach((bytes, i) => assert.equal(sha256(bytes), i % 2 === 0 ? big.digest : small.digest));
    proxy.close();
  });

  it('cancels a transfer mid-way and a request in flight', async () => {
    const proxy = await connectWs(service, 64 * 1024);
    const image = await proxy.openImage(reference);
    const blob = await proxy.getBlob(image, big.digest);
    const reader = blob.stream.getReader();
    await reader.read(); // some bytes came; the rest wait for credit
    await blob.cancel();
    await assert.rejects(async () => {
      for (;;) if ((await reader.read()).done) break;
    }, /cancelled/);
    const aborted = new AbortController();
    const opening = proxy.openImage(`oci:${path.join(root, 'layout')}:latest`, aborted.signal);
    aborted.abort();
    // Either answered before the cancel arrived, or cancelled: never left hanging.
    await opening.then(() => undefined, (err: ProxyError) => assert.equal(err.code, RpcErrorCodes.Cancelled));
    assert.deepEqual((await proxy.getLayerInfo(image)).length, 2, 'the connection keeps serving');
    proxy.close();
  });

  it('serves the unix socket given with the same serve', () => {
    assert.ok(existsSync(path.join(root, 'service.sock')));
  });

  it('prints the token path, never the token, and stops on SIGTERM removing the generated token', async () => {
    const own = await startWsService();
    const proxy = await connectWs(own);
    await proxy.openImage(reference);
    assert.ok(!own.stderr().includes(own.token));
    const exit = await own.stop();
    assert.equal(exit.code, 0, own.stderr());
    await until('the token file is removed', () => !existsSync(own.tokenPath));
    await proxy.closed;
  });
});
