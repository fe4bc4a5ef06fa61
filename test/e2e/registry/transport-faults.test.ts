/**
 * docker:// robustness against a real docker-registry behind the fault proxy: blobs cut or
 * stalled mid-way resume with Range from the last delivered byte, 429 and 5xx are retried,
 * lasting faults become "retryable", a slow reader is not mistaken for a stall, redirects to
 * another host lose the Authorization header, and the User-Agent names layerpipe.
 */
import { strict as assert } from 'node:assert';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { DigestMismatchError, ImageNotFoundError, RetryableError } from '../../../protocol/errors';
import { skopeoErrorCode } from '../../../server/wires/skopeo/error-code';
import { layerpipeVersion } from '../../../server/transports/docker/settings';
import { openImage, readBlob, readStream, rejection, TestContexts } from '../../harness/docker-source';
import { neverAborted } from '../../harness/context';
import { match, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy';
import { randomLayer, type BuiltLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, type PushedSingleImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const STALL_MS = 400;
const ATTEMPTS = 3;
/** Fast tuning for tests, as LAYERPIPE_STALL_TIMEOUT_MS and friends would set it. */
const TUNING = { stallTimeoutMs: STALL_MS, retryDelayMs: 20, retryAttempts: ATTEMPTS } as const;

describe('docker:// through the fault proxy', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  let big: BuiltLayer;
  const ref = (suffix = 'faults/img:v1') => `docker://${proxy.host}/${suffix}`;
  const contexts = new TestContexts();
  const ctx = (extra: Parameters<TestContexts['with']>[0] = {}) => contexts.with({ tlsVerify: false, ...TUNING, ...extra });

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    big = randomLayer(3 * 1024 * 1024);
    image = await pushImage(registry, 'faults/img:v1', { layers: [big] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => {
    proxy.clearRules();
  });
  afterEach(() => contexts.closeAll());

  it('resumes a cut blob with a Range request from the last byte delivered', async () => {
    const opened = await openImage(ref(), ctx());
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 1_000_000 } });
    const start = proxy.requests.length;
    const blob = await readBlob(opened, big.digest, big.compressed.length);
    assert.equal(blob.size, big.compressed.length);
    assert.ok(blob.bytes.equals(big.compressed), 'bytes after resume');
    const gets = proxy.requests.slice(start).filter((r) => match.blobGet(big.digest)(r));
    assert.deepEqual(gets.map((r) => r.range), [undefined, 'bytes=1000000-']);
    assert.equal(gets[1]!.status, 206);
  });

  it('resumes several cuts in a row, each from where the last stopped', async () => {
    const opened = await openImage(ref(), ctx());
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 700_000 }, times: 3 });
    const start = proxy.requests.length;
    const blob = await readBlob(opened, big.digest);
    assert.ok(blob.bytes.equals(big.compressed));
    const ranges = proxy.requests.slice(start).filter((r) => match.blobGet(big.digest)(r)).map((r) => r.range);
    assert.deepEqual(ranges, [undefined, 'bytes=700000-', 'bytes=1400000-', 'bytes=2100000-']);
  });

  it('resumes a stalled blob after the stall timeout instead of hanging', async () => {
    const opened = await openImage(ref(), ctx());
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'stall', afterBytes: 500_000 } });
    const started = Date.now();
    const blob = await readBlob(opened, big.digest);
    const took = Date.now() - started;
    assert.ok(blob.bytes.equals(big.compressed));
    assert.ok(took >= STALL_MS && took < STALL_MS + 5_000, `took ${took} ms`);
    const ranges = proxy.requests.filter((r) => match.blobGet(big.digest)(r)).slice(-2).map((r) => r.range);
    assert.deepEqual(ranges, [undefined, 'bytes=500000-']);
  });

  it('does not take a slow reader for a stall, and does not buffer the blob', async () => {
    const opened = await openImage(ref(), ctx());
    const start = proxy.requests.length;
    const blob = await opened.openBlob({ digest: big.digest, size: big.compressed.length, signal: neverAborted() });
    const first = (await new Promise<Buffer>((resolve) => blob.stream.once('data', resolve)));
    blob.stream.pause();
    await new Promise((r) => setTimeout(r, STALL_MS * 3));
    // Paused: what sits in the stream is bounded by its buffer, not the 3 MiB blob.
    assert.ok(blob.stream.readableLength <= 1024 * 1024, `buffered ${blob.stream.readableLength}`);
    const rest = await readStream(blob.stream);
    assert.ok(Buffer.concat([first, rest]).equals(big.compressed));
    const gets = proxy.requests.slice(start).filter((r) => match.blobGet(big.digest)(r));
    assert.equal(gets.length, 1, 'no resume for a paused reader');
  });

  it('fails a blob that keeps getting cut without progress, as retryable', async () => {
    const opened = await openImage(ref(), ctx());
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 100 }, times: 1 });
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 0 }, times: Infinity });
    const blob = await opened.openBlob({ digest: big.digest, size: -1, signal: neverAborted() });
    const err = await rejection(readStream(blob.stream), RetryableError);
    assert.match(err.message, /at byte 100/);
    assert.equal(skopeoErrorCode(err), 'retryable');
  });

  it('retries 429 after Retry-After and 503 with backoff', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'status', status: 429, headers: { 'Retry-After': '1' } } });
    const started = Date.now();
    const opened = await openImage(ref(), ctx());
    assert.ok(Date.now() - started >= 900, 'waited for Retry-After');
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'status', status: 503 }, times: ATTEMPTS - 1 });
    assert.ok((await readBlob(opened, big.digest)).bytes.equals(big.compressed));
  });

  it('reports lasting 5xx as retryable after a bounded number of tries', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'status', status: 502 }, times: Infinity });
    const start = proxy.requests.length;
    const err = await rejection(openImage(ref(), ctx()), RetryableError);
    assert.equal(skopeoErrorCode(err), 'retryable');
    assert.equal(proxy.requests.slice(start).filter((r) => match.manifest()(r)).length, ATTEMPTS);
  });

  it('bounds an operation with --command-timeout', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'delay', ms: 3_000 } });
    const started = Date.now();
    const err = await rejection(openImage(ref(), ctx({ commandTimeoutMs: 300 })), RetryableError);
    assert.match(err.message, /timed out/);
    assert.ok(Date.now() - started < 2_500);
  });

  it('checks the bytes of a manifest fetched by digest', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'corrupt', offset: 10 } });
    await rejection(openImage(ref(`faults/img@${image.manifestDigest}`), ctx()), DigestMismatchError);
  });

  it('sends a User-Agent naming layerpipe, after --user-agent-prefix', async () => {
    const start = proxy.requests.length;
    await openImage(ref(), contexts.with({ tlsVerify: false, ...TUNING }, { userAgentPrefix: 'bootc/1.2' }));
    const agents = new Set(proxy.requests.slice(start).map((r) => r.headers['user-agent']));
    assert.deepEqual([...agents], [`bootc/1.2 layerpipe/${layerpipeVersion()}`]);
    assert.match(layerpipeVersion(), /^\d+\.\d+\.\d+/);
  });

  it('asks for OCI and Docker manifests and indexes', async () => {
    const start = proxy.requests.length;
    await openImage(ref(), ctx());
    const accept = String(proxy.requests.slice(start).find((r) => match.manifest()(r))!.headers.accept);
    for (const t of ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json',
      'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json']) {
      assert.ok(accept.includes(t), `${t} in ${accept}`);
    }
  });

  it('reuses keep-alive connections across requests and images', async () => {
    // A TCP relay in front of the registry counts connections; bytes pass through untouched.
    const connections: net.Socket[] = [];
    const relay = net.createServer((client) => {
      connections.push(client);
      const upstream = net.connect(registry.port, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const port = (relay.address() as AddressInfo).port;
      let requests = 0;
      // One context, as one session: its pool's connections are what is reused.
      const session = ctx();
      for (let i = 0; i < 3; i++) {
        const opened = await openImage(`docker://127.0.0.1:${port}/faults/img:v1`, session);
        await readBlob(opened, big.digest);
        await opened.storedConfig();
        requests += 3;
      }
      // One refused HTTPS try (--tls-verify=false probes HTTPS first), then plain HTTP; undici
      // may open a second socket while the first response is being finished, never one per request.
      assert.ok(requests >= 9);
      assert.ok(connections.length <= 3, `${connections.length} connections for ${requests + 2} requests`);
    } finally {
      await contexts.closeAll();
      for (const c of connections) c.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    }
  });

  it('treats a refused connection as retryable after retries', async () => {
    const dead = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    const host = dead.host;
    await dead.close();
    const err = await rejection(openImage(`docker://${host}/faults/img:v1`, ctx()), RetryableError);
    assert.equal(skopeoErrorCode(err), 'retryable');
  });

  it('is not found through the proxy like directly', async () => {
    await rejection(openImage(ref('faults/img:nope'), ctx()), ImageNotFoundError);
  });
});

/** A stand-in for blob storage (S3 and the like) that a registry redirects to; records what it is sent. */
async function startBlobStorage(blobs: Map<string, Buffer>, cutFirstAfter: number | undefined): Promise<{ url: string; seen: http.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: http.IncomingHttpHeaders[] = [];
  let cut = cutFirstAfter;
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    const data = blobs.get((req.url ?? '').replace(/^\/storage\//, '').split('?')[0]!);
    if (data === undefined) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = range === null ? 0 : Number(range[1]);
    const body = data.subarray(from);
    res.writeHead(range === null ? 200 : 206, {
      'content-length': String(body.length),
      ...(range === null ? {} : { 'content-range': `bytes ${from}-${data.length - 1}/${data.length}` }),
    });
    if (cut !== undefined) {
      const n = cut;
      cut = undefined;
      res.write(body.subarray(0, n), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('docker:// redirects to blob storage', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  let layer: BuiltLayer;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ auth: 'htpasswd' });
    layer = randomLayer(600_000);
    image = await pushImage(registry, 'redir/img:v1', { layers: [layer] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  const contexts = new TestContexts();
  afterEach(() => contexts.closeAll());

  it('follows the redirect without Authorization, and resumes through the registry again', async () => {
    const storage = await startBlobStorage(new Map([[layer.digest, layer.compressed]]), 200_000);
    try {
      const [username, password] = registry.creds!.split(':') as [string, string];
      const opened = await openImage(`docker://${proxy.host}/redir/img:v1`, contexts.with({ tlsVerify: false, credentials: { username, password }, ...TUNING }));
      assert.equal(opened.manifestDigest, image.manifestDigest);
      proxy.addRule({ match: match.blobGet(layer.digest), action: { kind: 'status', status: 307, headers: { location: `${storage.url}/storage/${layer.digest}?sig=secret` }, body: '' }, times: Infinity });
      const start = proxy.requests.length;
      const blob = await readBlob(opened, layer.digest);
      assert.ok(blob.bytes.equals(layer.compressed));
      const toRegistry = proxy.requests.slice(start).filter((r) => match.blobGet(layer.digest)(r));
      assert.equal(toRegistry.length, 2, 'first request, then the resume');
      assert.ok(toRegistry.every((r) => typeof r.headers.authorization === 'string' && r.headers.authorization.startsWith('Basic ')));
      assert.equal(toRegistry[1]!.range, 'bytes=200000-');
      assert.equal(storage.seen.length, 2);
      assert.ok(storage.seen.every((h) => h.authorization === undefined), 'no Authorization at the storage host');
      assert.equal(storage.seen[1]!.range, 'bytes=200000-');
    } finally {
      proxy.clearRules();
      await storage.close();
    }
  });
});
