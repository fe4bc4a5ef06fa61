/**
 * Parallel Range requests where real registries put blobs: behind a redirect to blob storage
 * (the pieces go straight to the storage host, never with the registry's Authorization, and an
 * expired storage URL is replaced by asking the registry again), and over a shaped link to a
 * TLS registry (test/harness/shaping-proxy.ts: the TCP proxy is transparent to TLS, each
 * connection capped).
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { openImage, readBlob, TestContexts } from '../../harness/docker-source';
import { match, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy';
import { pushRawBlobImage, randomBlob, type RawBlobImage } from '../../harness/raw-blob-image';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';
import { startShapingProxy } from '../../harness/shaping-proxy';

const skip = registrySuiteSkip();
const CHUNK = 256 * 1024;
const PARALLEL = { connections: 4, chunkBytes: CHUNK, minBlobBytes: 4 * CHUNK, sampleMs: 0, splitBelowBytesPerSecond: 0, remoteAfterMs: 0, maxHeldBytes: 64 * CHUNK } as const;
const TUNING = { stallTimeoutMs: 2_000, retryDelayMs: 20, retryAttempts: 3, parallelRanges: PARALLEL } as const;

interface Storage {
  readonly url: string;
  readonly seen: http.IncomingHttpHeaders[];
  /** Answer 403 (an expired signature) to this many requests carrying a Range header first. */
  refuseRanges: number;
  close(): Promise<void>;
}

/** Blob storage (S3 and the like) that a registry redirects to: "bytes=a-b" ranges, Accept-Ranges. */
async function startStorage(blobs: ReadonlyMap<string, Buffer>): Promise<Storage> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    const data = blobs.get((req.url ?? '').replace(/^\/storage\//, '').split('?')[0]!);
    if (data === undefined) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m !== null && storage.refuseRanges > 0) {
      storage.refuseRanges--;
      return void res.writeHead(403, { 'content-length': '0' }).end();
    }
    const from = m === null ? 0 : Number(m[1]);
    const last = m === null || m[2] === '' ? data.length - 1 : Math.min(Number(m[2]), data.length - 1);
    const body = data.subarray(from, last + 1);
    res.writeHead(m === null ? 200 : 206, {
      'accept-ranges': 'bytes',
      'content-length': String(body.length),
      ...(m === null ? {} : { 'content-range': `bytes ${from}-${last}/${data.length}` }),
    });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const storage: Storage = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    refuseRanges: 0,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  return storage;
}

describe('parallel ranges behind a redirect to blob storage', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: RawBlobImage;
  let bytes: Buffer;
  let storage: Storage;
  const contexts = new TestContexts();

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ auth: 'htpasswd' });
    bytes = randomBlob(9 * CHUNK + 4321);
    image = await pushRawBlobImage(registry, 'redir/big', 'v1', [bytes]);
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    storage = await startStorage(new Map([[image.layers[0]!.digest, bytes]]));
    proxy.addRule({
      match: match.blobGet(image.layers[0]!.digest),
      action: { kind: 'status', status: 307, headers: { location: `${storage.url}/storage/${image.layers[0]!.digest}?sig=secret` }, body: '' },
      times: Infinity,
    });
  });
  after(async () => {
    await storage?.close();
    await proxy?.close();
    await registry?.stop();
  });
  afterEach(() => contexts.closeAll());

  const open = async () => {
    const [username, password] = registry.creds!.split(':') as [string, string];
    return openImage(`docker://${proxy.host}/redir/big:v1`, contexts.with({ tlsVerify: false, credentials: { username, password }, ...TUNING }));
  };

  it('sends the pieces to the storage host, none with Authorization', async () => {
    const opened = await open();
    const digest = image.layers[0]!.digest;
    const from = proxy.requests.length;
    const seenFrom = storage.seen.length;
    const got = await readBlob(opened, digest, bytes.length);
    assert.ok(got.bytes.equals(bytes));
    const toRegistry = proxy.requests.slice(from).filter(match.blobGet(digest));
    assert.equal(toRegistry.length, 1, 'only the first GET goes to the registry');
    assert.ok(toRegistry[0]!.headers.authorization?.startsWith('Basic '));
    const atStorage = storage.seen.slice(seenFrom);
    assert.equal(atStorage.length, 10, 'the plain GET and 9 pieces');
    assert.ok(atStorage.every((h) => h.authorization === undefined), 'no Authorization at the storage host');
    assert.equal(atStorage.filter((h) => h.range !== undefined).length, 9);
  });

  it('asks the registry again when the storage URL stops answering a piece', async () => {
    const opened = await open();
    const digest = image.layers[0]!.digest;
    const from = proxy.requests.length;
    const seenFrom = storage.seen.length;
    storage.refuseRanges = 1;
    const got = await readBlob(opened, digest, bytes.length);
    assert.ok(got.bytes.equals(bytes));
    const toRegistry = proxy.requests.slice(from).filter(match.blobGet(digest));
    assert.equal(toRegistry.length, 2, 'the first GET and one more after the refusal');
    assert.ok(toRegistry[1]!.range !== undefined && toRegistry[1]!.headers.authorization?.startsWith('Basic '), 'the registry asked again for the refused range, with its auth');
    assert.ok(storage.seen.slice(seenFrom).every((h) => h.authorization === undefined));
  });
});

describe('parallel ranges over a shaped link to a TLS registry', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let image: RawBlobImage;
  let bytes: Buffer;
  const contexts = new TestContexts();

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ tls: true });
    bytes = randomBlob(12 * CHUNK + 99);
    image = await pushRawBlobImage(registry, 'tls/big', 'v1', [bytes]);
  });
  after(() => registry?.stop());
  afterEach(() => contexts.closeAll());

  it('verifies TLS through the proxy, caps each connection, adds the round trip, and uses several connections', async () => {
    const rate = 1_000_000;
    const shaper = await startShapingProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: rate, rttMs: 100 });
    try {
      const ctx = contexts.with({ certDir: registry.certDir, ...TUNING });
      const opened = await openImage(`docker://${shaper.host}/tls/big:v1`, ctx);
      const before = shaper.connectionCount();
      const started = Date.now();
      const got = await readBlob(opened, image.layers[0]!.digest, bytes.length);
      const seconds = (Date.now() - started) / 1000;
      assert.equal(createHash('sha256').update(got.bytes).digest('hex'), image.layers[0]!.digest.slice(7));
      assert.ok(shaper.peakConnections() >= PARALLEL.connections, `at most ${shaper.peakConnections()} connections at once`);
      assert.ok(shaper.connectionCount() > before, 'new connections for the pieces');
      // A lower bound only (the cap holds whatever the load): all connections at full rate, no round trips.
      const floor = bytes.length / (PARALLEL.connections * rate);
      assert.ok(seconds >= floor, `${seconds} s for ${bytes.length} bytes over ${PARALLEL.connections} connections capped at ${rate} B/s`);
      assert.ok(shaper.bytesDown() >= bytes.length);
      // A new connection: its own round trip, TLS's, then the request's.
      const pingStarted = Date.now();
      const status = await new Promise<number>((resolve, reject) => {
        https.get(`https://${shaper.host}/v2/`, { ca: readFileSync(registry.caCertFile!), agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
      assert.equal(status, 200);
      assert.ok(Date.now() - pingStarted >= 3 * 100, `a first request in ${Date.now() - pingStarted} ms`);
    } finally {
      await shaper.close();
    }
  });
});
