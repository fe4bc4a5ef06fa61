/**
 * docker:// network paths: HTTP_PROXY/NO_PROXY through a real CONNECT proxy, an IPv6 literal
 * registry, a stalled response before headers, the 4 MiB manifest cap, a client abort, a
 * bearer token refused mid-session (refreshed once), and --debug logs free of secrets.
 */
import { strict as assert } from 'node:assert';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { AccessDeniedError, CancelledError, LayerpipeError } from '../../../protocol/errors';
import type { Logger } from '../../../server/log';
import { openImage, readBlob, readStream, rejection, TestContexts } from '../../harness/docker-source';
import { neverAborted } from '../../harness/context';
import { match, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy';
import { makeLayer, randomLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, type PushedSingleImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const STALL_MS = 400;
/** Fast tuning for tests, as LAYERPIPE_STALL_TIMEOUT_MS and friends would set it. */
const TUNING = { stallTimeoutMs: STALL_MS, retryDelayMs: 20, retryAttempts: 3 } as const;

/** A forward proxy (CONNECT tunnels and absolute-form requests) that sends every host to one port. */
async function startForwardProxy(targetPort: number): Promise<{ url: string; targets: string[]; close(): Promise<void> }> {
  const targets: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    targets.push(`GET ${req.url ?? ''}`);
    const url = new URL(req.url ?? '/');
    const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: url.pathname + url.search, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    targets.push(`CONNECT ${req.url ?? ''}`);
    const upstream = net.connect(targetPort, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    sockets.add(client);
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    targets,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

describe('docker:// network paths', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  const layer = randomLayer(2 * 1024 * 1024);

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    image = await pushImage(registry, 'net/img:v1', { layers: [layer] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  const contexts = new TestContexts();
  beforeEach(() => {
    proxy.clearRules();
  });
  afterEach(() => contexts.closeAll());

  const ctx = () => contexts.with({ tlsVerify: false, ...TUNING });

  it('goes through HTTP_PROXY for a non-local host, and direct for NO_PROXY hosts', async () => {
    const forward = await startForwardProxy(registry.port);
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY, http_proxy: process.env.http_proxy, no_proxy: process.env.no_proxy };
    try {
      delete process.env.http_proxy;
      delete process.env.no_proxy;
      process.env.HTTP_PROXY = forward.url;
      // Only the proxy can resolve this name (the .invalid TLD never resolves).
      const opened = await openImage(`docker://registry.invalid:${registry.port}/net/img:v1`, ctx());
      assert.equal(opened.manifestDigest, image.manifestDigest);
      assert.ok((await readBlob(opened, layer.digest)).bytes.equals(layer.compressed));
      assert.ok(forward.targets.length > 0 && forward.targets.every((t) => t.includes(`registry.invalid:${registry.port}`)), JSON.stringify(forward.targets));
      const seen = forward.targets.length;
      process.env.NO_PROXY = 'example.com,.invalid';
      await rejection(openImage(`docker://registry.invalid:${registry.port}/net/img:v1`, ctx()), LayerpipeError);
      assert.equal(forward.targets.length, seen, 'NO_PROXY host went direct');
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await contexts.closeAll();
      await forward.close();
    }
  });

  it('tunnels HTTPS through HTTPS_PROXY (CONNECT), TLS inside the tunnel', async () => {
    const tlsRegistry = await startRegistry({ tls: true });
    const forward = await startForwardProxy(tlsRegistry.port);
    const saved = { HTTPS_PROXY: process.env.HTTPS_PROXY, https_proxy: process.env.https_proxy, NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy };
    try {
      const tlsImage = await pushImage(tlsRegistry, 'net/tls:v1', { layers: [makeLayer({ via: 'connect' })] });
      for (const k of Object.keys(saved)) delete process.env[k];
      process.env.HTTPS_PROXY = forward.url.replace('http://', ''); // Go takes a bare host:port too.
      // The test certificate names 127.0.0.1 only, so the name used through the proxy is not verified.
      const opened = await openImage(`docker://registry.invalid:${tlsRegistry.port}/net/tls:v1`, ctx());
      assert.equal(opened.manifestDigest, tlsImage.manifestDigest);
      assert.ok(forward.targets.length > 0 && forward.targets.every((t) => t === `CONNECT registry.invalid:${tlsRegistry.port}`), JSON.stringify(forward.targets));
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await contexts.closeAll();
      await forward.close();
      await tlsRegistry.stop();
    }
  });

  it('reaches a registry named by an IPv6 literal', async () => {
    const relay = net.createServer((client) => {
      const upstream = net.connect(registry.port, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '::1', resolve));
    try {
      const port = (relay.address() as AddressInfo).port;
      const opened = await openImage(`docker://[::1]:${port}/net/img@${image.manifestDigest}`, ctx());
      assert.equal(opened.manifestDigest, image.manifestDigest);
    } finally {
      await contexts.closeAll();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it('retries a response whose headers stall', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'delay', ms: STALL_MS * 4 } });
    const start = proxy.requests.length;
    const opened = await openImage(`docker://${proxy.host}/net/img:v1`, ctx());
    assert.equal(opened.manifestDigest, image.manifestDigest);
    assert.equal(proxy.requests.slice(start).filter((r) => match.manifest()(r)).length, 2);
  });

  it('refuses a manifest over 4 MiB', async () => {
    const huge = JSON.stringify({ schemaVersion: 2, pad: 'x'.repeat(4 * 1024 * 1024) });
    proxy.addRule({ match: match.manifest(), action: { kind: 'status', status: 200, body: huge, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } } });
    const err = await rejection(openImage(`docker://${proxy.host}/net/img:v1`, ctx()), LayerpipeError);
    assert.match(err.message, /4194304/);
  });

  it('stops a blob download when the client aborts', async () => {
    const opened = await openImage(`docker://${proxy.host}/net/img:v1`, ctx());
    const controller = new AbortController();
    proxy.addRule({ match: match.blobGet(layer.digest), action: { kind: 'stall', afterBytes: 100_000 } });
    const blob = await opened.openBlob({ digest: layer.digest, size: -1, signal: controller.signal });
    const start = proxy.requests.length;
    setTimeout(() => controller.abort(), 50);
    await rejection(readStream(blob.stream), CancelledError);
    await new Promise((r) => setTimeout(r, STALL_MS * 2));
    assert.equal(proxy.requests.length, start, 'no resume after an abort');
  });
});

describe('docker:// token refresh and logs', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  const layer = makeLayer({ refresh: 'me' });

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ auth: 'token' });
    image = await pushImage(registry, 'ref/img:v1', { layers: [layer] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  const contexts = new TestContexts();
  afterEach(() => contexts.closeAll());

  it('gets a new token once when the registry refuses the cached one', async () => {
    const creds = { username: 'tester', password: 'pa55-w0rd' };
    const opened = await openImage(`docker://${proxy.host}/ref/img:v1`, contexts.with({ tlsVerify: false, credentials: creds, ...TUNING }));
    const tokensBefore = registry.tokenServer!.requests.length;
    const challenge = `Bearer realm="${registry.tokenServer!.realm}",service="layerpipe-test-registry",scope="repository:ref/img:pull",error="invalid_token"`;
    proxy.addRule({ match: match.blobGet(layer.digest), action: { kind: 'status', status: 401, headers: { 'WWW-Authenticate': challenge }, body: '{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}' } });
    assert.ok((await readBlob(opened, layer.digest)).bytes.equals(layer.compressed));
    assert.equal(registry.tokenServer!.requests.length, tokensBefore + 1);
    // Refused again after the refresh: denied, not a loop.
    proxy.addRule({ match: match.blobGet(layer.digest), action: { kind: 'status', status: 401, headers: { 'WWW-Authenticate': challenge } }, times: 2 });
    await rejection(opened.openBlob({ digest: layer.digest, size: -1, signal: neverAborted() }), AccessDeniedError);
    assert.equal(image.manifestDigest, opened.manifestDigest);
  });

  it('logs requests with --debug but never credentials or tokens', async () => {
    const lines: string[] = [];
    const log: Logger = { debugEnabled: true, debug: (m) => lines.push(m), warn: (m) => lines.push(m) };
    const opened = await openImage(`docker://${proxy.host}/ref/img:v1`, contexts.with({ tlsVerify: false, credentials: { username: 'tester', password: 'pa55-w0rd' }, ...TUNING }, { log }));
    await readBlob(opened, layer.digest);
    const tokenHeader = proxy.requests.map((r) => r.headers.authorization).find((a) => typeof a === 'string' && a.startsWith('Bearer '))!;
    const text = lines.join('\n');
    assert.match(text, /GET http:\/\/127\.0\.0\.1:\d+\/v2\/ref\/img\/manifests\/v1 -> 200/);
    assert.ok(!text.includes('pa55-w0rd'), 'no password');
    assert.ok(!text.includes(Buffer.from('tester:pa55-w0rd').toString('base64')), 'no Basic value');
    assert.ok(!text.includes(tokenHeader.slice('Bearer '.length)), 'no token');
  });
});
