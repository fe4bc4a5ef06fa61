/**
 * The TypeScript client at protocol 1.0 against bin/layerpipe, on every way it connects
 * (socketpair, stdio) and every payload (fd, fifo, stream): answers equal to the 0.2.x client's
 * for the same image, concurrent calls, cancellation, progress and verification errors.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ASKED_STREAM_WINDOW, connectUnixTransport, defaultProxyCommand, ImageProxy, ProxyClosedError, ProxyRpcError, readAll, RpcImageProxy, spawnPacketTransport, spawnStdioTransport, type RpcTransport,
} from '../../clients/typescript';
import { RpcErrorCodes, type PayloadKind } from '../../protocol/jsonrpc';
import { makeLayer, randomLayer, sha256, writeDirImage, writeOciImage, type BuiltLayer } from '../harness/oci-builder';

interface Mode {
  readonly name: string;
  readonly payload: PayloadKind;
  readonly connect: () => Promise<RpcTransport>;
}

const PROXY_ARGS = ['--insecure-policy'];
const MODES: readonly Mode[] = [
  { name: 'socketpair, fd', payload: 'fd', connect: () => spawnPacketTransport({ args: PROXY_ARGS }) },
  { name: 'socketpair, fifo', payload: 'fifo', connect: () => spawnPacketTransport({ args: PROXY_ARGS }) },
  { name: 'socketpair, stream', payload: 'stream', connect: () => spawnPacketTransport({ args: PROXY_ARGS }) },
  { name: 'stdio, fifo', payload: 'fifo', connect: () => spawnStdioTransport({ args: PROXY_ARGS }) },
  { name: 'stdio, stream', payload: 'stream', connect: () => spawnStdioTransport({ args: PROXY_ARGS }) },
];

describe('TypeScript client, protocol 1.0', () => {
  let dir = '';
  let ociRef = '';
  let dirRef = '';
  let small: BuiltLayer;
  let large: BuiltLayer;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'layerpipe-client1-'));
    small = makeLayer({ 'etc/hello.txt': 'hello\n' });
    large = randomLayer(3 * ASKED_STREAM_WINDOW); // three of the client's windows: credit must flow for it to arrive
    ociRef = `oci:${path.join(dir, 'oci')}:latest`;
    writeOciImage(path.join(dir, 'oci'), { layers: [small, large] });
    dirRef = `dir:${path.join(dir, 'docker')}`;
    writeDirImage(path.join(dir, 'docker'), { layers: [small] });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** What the 0.2.x client answers for `ref`. */
  async function answers02(ref: string): Promise<{ manifest: Buffer; digest: string; config: Buffer; fullConfig: Buffer }> {
    const proxy = await ImageProxy.spawn({ args: PROXY_ARGS });
    await proxy.initialize();
    const image = await proxy.openImage(ref);
    const manifest = await proxy.getManifest(image);
    const config = await proxy.getConfig(image);
    const fullConfig = await proxy.getFullConfig(image);
    await proxy.shutdown();
    return { manifest: manifest.bytes, digest: manifest.digest, config: Buffer.from(JSON.stringify(config)), fullConfig: Buffer.from(JSON.stringify(fullConfig)) };
  }

  async function withProxy(mode: Mode, body: (proxy: RpcImageProxy) => Promise<void>): Promise<void> {
    const proxy = await RpcImageProxy.connect(await mode.connect(), { payloads: [mode.payload] });
    try {
      assert.equal(proxy.payload, mode.payload, 'the proxy chose the payload asked for');
      assert.match(proxy.protocolVersion, /^1\.\d+\.\d+$/);
      await body(proxy);
    } catch (err) {
      await proxy.close();
      throw err;
    }
    assert.equal(await proxy.shutdown(), 0);
  }

  for (const mode of MODES) {
    describe(mode.name, () => {
      it('answers as the 0.2.x client does, and every blob arrives verified', async () => {
        for (const ref of [ociRef, dirRef]) {
          const expected = await answers02(ref);
          await withProxy(mode, async (proxy) => {
            const image = await proxy.openImage(ref);
            const manifest = await proxy.getManifest(image);
            assert.deepEqual(manifest.bytes, expected.manifest);
            assert.equal(manifest.digest, expected.digest);
            assert.deepEqual(JSON.parse((await proxy.getConfig(image)).toString()), JSON.parse(expected.config.toString()));
            assert.deepEqual(JSON.parse((await proxy.getFullConfig(image)).bytes.toString()), JSON.parse(expected.fullConfig.toString()));
            const layers = await proxy.getLayerInfo(image);
            assert.ok(layers.length >= 1);
            for (const layer of layers) {
              const blob = await proxy.getBlob(image, layer.digest, layer.size);
              assert.equal(blob.size, layer.size);
              const [bytes] = await Promise.all([readAll(blob.stream), blob.finish()]);
              assert.equal(bytes.length, layer.size);
              assert.equal(sha256(bytes), layer.digest);
            }
            assert.deepEqual(await proxy.getSignatures(image), [], 'an unsigned image has no signatures');
            await proxy.closeImage(image);
          });
        }
      });

      it('serves concurrent calls on one connection, with progress', async () => {
        await withProxy(mode, async (proxy) => {
          const image = await proxy.openImage(ociRef);
          const seen: number[] = [];
          const reads = Array.from({ length: 6 }, async (_, i) => {
            const blob = await proxy.getBlob(image, large.digest, large.compressed.length, i === 0 ? { onProgress: (bytes) => seen.push(bytes) } : {});
            const [bytes] = await Promise.all([readAll(blob.stream), blob.finish()]);
            return sha256(bytes);
          });
          const manifests = Array.from({ length: 6 }, () => proxy.getManifest(image));
          const [digests, answers] = await Promise.all([Promise.all(reads), Promise.all(manifests)]);
          for (const digest of digests) assert.equal(digest, large.digest);
          for (const answer of answers) assert.deepEqual(answer.bytes, answers[0]!.bytes);
          assert.ok(seen.length >= 1, 'progress was reported');
          assert.ok(seen.every((b, i) => i === 0 || b >= seen[i - 1]!), 'progress only grows');
          assert.ok(seen.at(-1)! <= large.compressed.length);
        });
      });

      it('reports a size mismatch through finish(), after the bytes that fit', async () => {
        await withProxy(mode, async (proxy) => {
          const image = await proxy.openImage(ociRef);
          const blob = await proxy.getBlob(image, small.digest, small.compressed.length + 1);
          const [bytes, outcome] = await Promise.all([readAll(blob.stream), blob.finish().then(() => undefined, (err: unknown) => err)]);
          assert.ok(outcome instanceof ProxyRpcError, `expected a ProxyRpcError, got ${String(outcome)}`);
          assert.equal(outcome.rpcCode, RpcErrorCodes.VerificationFailed);
          assert.equal(sha256(bytes), small.digest, 'every byte came before the error');
          // The connection keeps serving.
          assert.equal((await proxy.getLayerInfo(image)).length, 2);
        });
      });

      it('rejects calls with ProxyClosedError once the proxy is gone, and never crashes', async () => {
        const proxy = await RpcImageProxy.connect(await mode.connect(), { payloads: [mode.payload] });
        const image = await proxy.openImage(ociRef);
        const blob = await proxy.getBlob(image, large.digest, large.compressed.length);
        process.kill(proxy.pid!, 'SIGKILL');
        const [, outcome] = await Promise.all([readAll(blob.stream).catch(() => Buffer.alloc(0)), blob.finish().then(() => undefined, (err: unknown) => err)]);
        assert.ok(outcome instanceof Error, 'an interrupted transfer does not finish well');
        for (let i = 0; i < 3; i++) await assert.rejects(proxy.getLayerInfo(image), ProxyClosedError);
        await proxy.close();
      });

      it('cancels a transfer and an aborted call, and keeps serving', async () => {
        await withProxy(mode, async (proxy) => {
          const image = await proxy.openImage(ociRef);
          const blob = await proxy.getBlob(image, large.digest, large.compressed.length);
          await blob.cancel();
          const controller = new AbortController();
          controller.abort(new Error('not wanted'));
          await assert.rejects(proxy.getManifest(image, { signal: controller.signal }), /not wanted/);
          assert.equal(await proxy.openImageOptional(`oci:${path.join(dir, 'oci')}:no-such-tag`), null);
          await assert.rejects(proxy.openImage(`oci:${path.join(dir, 'oci')}:no-such-tag`), (err: unknown) => err instanceof ProxyRpcError && err.rpcCode === RpcErrorCodes.ImageNotFound);
          const again = await proxy.getBlob(image, small.digest, small.compressed.length);
          const [bytes] = await Promise.all([readAll(again.stream), again.finish()]);
          assert.equal(sha256(bytes), small.digest);
        });
      });
    });
  }

  it('shares one unix service between clients; one closing mid-transfer leaves the other whole', async () => {
    const socket = path.join(dir, 'service.sock');
    const service = spawn(defaultProxyCommand(), ['serve', '--listen', `unix:${socket}`, ...PROXY_ARGS], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    service.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => service.once('close', (code) => resolve(code)));
    try {
      for (let waited = 0; !existsSync(socket); waited += 20) {
        assert.ok(waited < 10_000, `the service did not create its socket: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const [first, second] = await Promise.all([
        RpcImageProxy.connect(connectUnixTransport(socket), { payloads: ['fd'] }),
        RpcImageProxy.connect(connectUnixTransport(socket), { payloads: ['stream'] }),
      ]);
      const [a, b] = await Promise.all([first.openImage(ociRef), second.openImage(ociRef)]);
      const abandoned = await first.getBlob(a, large.digest, large.compressed.length);
      abandoned.stream.once('data', () => void first.close());
      const kept = await second.getBlob(b, large.digest, large.compressed.length);
      const [bytes] = await Promise.all([readAll(kept.stream), kept.finish(), readAll(abandoned.stream).catch(() => Buffer.alloc(0))]);
      assert.equal(sha256(bytes), large.digest);
      assert.equal((await second.getManifest(b)).digest, (await second.getManifest(b)).digest);
      await second.close();
    } finally {
      service.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    }
  });
});
