/**
 * `serve --listen` WebSocket options: wss:// with --tls-cert/--tls-key, a non-loopback bind
 * refused without --allow-remote (and warned about with it), the per-connection transfer limit,
 * and the idle ping: a peer that stops answering pings is dropped and its session freed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ProxyError, WebSocketImageProxy, type WebSocketLike } from '../../clients/typescript/browser/ws-client';
import { RpcErrorCodes } from '../../protocol/jsonrpc';
import { randomLayer, writeOciImage, type BuiltLayer } from '../harness/oci-builder';
import { until } from '../harness/service';
import { connectWs, readAll, startWsService } from '../harness/websocket-service';

describe('serve --listen ws:// options', () => {
  let root: string;
  let layer: BuiltLayer;
  let reference: string;

  before(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'lp-ws-options-'));
    layer = randomLayer(4096, 'small.bin');
    writeOciImage(path.join(root, 'layout'), { layers: [layer] });
    reference = `oci:${path.join(root, 'layout')}:latest`;
  });
  after(() => undefined);

  it('serves wss:// with the given certificate', async () => {
    const cert = path.join(root, 'cert.pem');
    const key = path.join(root, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const service = await startWsService({ listen: 'wss://127.0.0.1:0', args: ['--tls-cert', cert, '--tls-key', key] });
    try {
      assert.match(service.url, /^wss:\/\//);
      const ca = readFileSync(cert);
      const proxy = await WebSocketImageProxy.connect(service.url, service.token, {
        webSocket: (url, protocols) => new WebSocket(url, protocols, { ca }) as unknown as WebSocketLike,
      });
      const blob = await proxy.getBlob(await proxy.openImage(reference), layer.digest);
      const [bytes] = await Promise.all([readAll(blob.stream), blob.finish()]);
      assert.equal(bytes.length, layer.compressed.length);
      await proxy.shutdown();
    } finally {
      await service.stop();
    }
  });

  it('refuses a non-loopback address without --allow-remote, and warns with it', async () => {
    await assert.rejects(startWsService({ listen: 'ws://0.0.0.0:0' }), /--allow-remote/);
    const service = await startWsService({ listen: 'ws://0.0.0.0:0', args: ['--allow-remote'] });
    try {
      assert.match(service.stderr(), /reachable from other machines/);
    } finally {
      await service.stop();
    }
  });

  it('limits the transfers one connection holds', async () => {
    const service = await startWsService();
    try {
      const proxy = await connectWs(service);
      const image = await proxy.openImage(reference);
      const held = [];
      for (let i = 0; i < 64; i++) held.push(await proxy.getBlob(image, layer.digest));
      await assert.rejects(proxy.getBlob(image, layer.digest), (err: ProxyError) => err.code === RpcErrorCodes.InvalidParams && /limit/.test(err.message));
      await Promise.all(held.map(async (b) => Promise.all([readAll(b.stream), b.finish()])));
      const again = await proxy.getBlob(image, layer.digest);
      await Promise.all([readAll(again.stream), again.finish()]);
      proxy.close();
    } finally {
      await service.stop();
    }
  });

  it('drops a peer that stops answering pings', async () => {
    const service = await startWsService({ env: { LAYERPIPE_WS_PING_INTERVAL_MS: '200' } });
    try {
      const silent = new WebSocket(service.url, { headers: { Authorization: `Bearer ${service.token}` }, autoPong: false });
      const closed = new Promise<number>((resolve) => silent.on('close', (code) => resolve(code)));
      await new Promise((resolve, reject) => silent.once('open', resolve).once('error', reject));
      const started = Date.now();
      assert.equal(await closed, 1006, 'terminated, without a close handshake');
      assert.ok(Date.now() - started < 5000);
      // A peer that answers pings stays.
      const live = await connectWs(service);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(typeof (await live.openImage(reference)), 'number');
      live.close();
      await until('the service is still running', () => service.child.exitCode === null);
    } finally {
      await service.stop();
    }
  });
});
