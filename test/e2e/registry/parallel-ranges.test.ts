/**
 * docker:// large blobs as concurrent Range requests (server/transports/docker/blob-parallel.ts),
 * against a real docker-registry behind the fault proxy: identical bytes for sizes that are no
 * multiple of the piece size, a cut or stalled piece resumed on its own, a registry that ignores
 * Range handled as one stream, memory bounded under a slow reader (per blob, and across the blobs
 * of one pool), cancellation closing every
 * piece's connection. Wrong bytes in one piece (through a spawned layerpipe) are reported as a
 * digest mismatch after every byte was delivered.
 */
import { strict as assert } from 'node:assert';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { readAll } from '../../../clients/typescript';
import { CancelledError } from '../../../protocol/errors';
import { ParallelBlobStream } from '../../../server/transports/docker/blob-parallel';
import { RegistryPool } from '../../../server/transports/docker/registry-pool';
import { neverAborted } from '../../harness/context';
import { openImage, readBlob, readStream, rejection, TestContexts } from '../../harness/docker-source';
import { match, startFaultProxy, type FaultProxy, type RequestMatcher, type SeenRequest } from '../../harness/fault-proxy';
import { pushRawBlobImage, randomBlob, type RawBlobImage } from '../../harness/raw-blob-image';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { proxyErrorOf, sha256Hex, withProxy } from '../../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const MiB = 1024 * 1024;
const CHUNK = 256 * 1024;
const CONNECTIONS = 4;
/** Pieces in flight or held at most (blob-parallel-open.ts: connections + 2). */
const WINDOW = CONNECTIONS + 2;
const PARALLEL = { connections: CONNECTIONS, chunkBytes: CHUNK, minBlobBytes: 4 * CHUNK, sampleMs: 0, splitBelowBytesPerSecond: 0, remoteAfterMs: 0, maxHeldBytes: 64 * CHUNK } as const;
const STALL_MS = 400;
const TUNING = { stallTimeoutMs: STALL_MS, retryDelayMs: 20, retryAttempts: 3, parallelRanges: PARALLEL } as const;

/** The Range headers of a blob's pieces after the first (which the plain GET carries). */
function pieceRanges(size: number, chunk: number): string[] {
  const out: string[] = [];
  for (let start = chunk; start < size; start += chunk) out.push(`bytes=${start}-${Math.min(start + chunk, size) - 1}`);
  return out;
}

const withRange = (digest: string, range: string): RequestMatcher => (r) => match.blobGet(digest)(r) && r.headers.range === range;

describe('docker:// large blobs as parallel Range requests', { skip, timeout: 240_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: RawBlobImage;
  const data = new Map<string, Buffer>();
  /** Sizes that are no multiple of CHUNK, one exactly one byte past, and one below the threshold. */
  const SIZES = [4 * CHUNK + 1, 7 * CHUNK + 12_345, 9 * CHUNK - 1, 4 * CHUNK - 1, 40 * CHUNK + 17, 6 * MiB + 777] as const;
  const blob = (i: number) => ({ digest: image.layers[i]!.digest, size: image.layers[i]!.size, bytes: data.get(image.layers[i]!.digest)! });
  const ref = () => `docker://${proxy.host}/ranges/img:v1`;
  const contexts = new TestContexts();
  const ctx = (extra: Parameters<TestContexts['with']>[0] = {}) => contexts.with({ tlsVerify: false, ...TUNING, ...extra });
  const gets = (digest: string, from: number): SeenRequest[] => proxy.requests.slice(from).filter(match.blobGet(digest));

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    const blobs = SIZES.map((size) => randomBlob(size));
    image = await pushRawBlobImage(registry, 'ranges/img', 'v1', blobs);
    for (const [i, b] of blobs.entries()) data.set(image.layers[i]!.digest, b);
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => proxy.clearRules());
  afterEach(() => contexts.closeAll());

  it('gives the same bytes for sizes that are no multiple of the piece, one Range request per piece', async () => {
    const opened = await openImage(ref(), ctx());
    for (const i of [0, 1, 2, 3]) {
      const { digest, size, bytes } = blob(i);
      const from = proxy.requests.length;
      const got = await readBlob(opened, digest, size);
      assert.equal(got.size, size);
      assert.ok(got.bytes.equals(bytes), `bytes of the ${size}-byte blob`);
      assert.equal(sha256Hex(got.bytes), digest);
      const seen = gets(digest, from);
      assert.equal(seen[0]!.range, undefined, 'a plain GET first');
      const expected = size >= PARALLEL.minBlobBytes ? pieceRanges(size, CHUNK) : [];
      assert.deepEqual(seen.slice(1).map((r) => r.range).sort(), expected.sort(), `pieces of the ${size}-byte blob`);
      assert.ok(seen.slice(1).every((r) => r.status === 206 && r.completed));
    }
  });

  it('resumes a piece whose connection is cut, from where that piece stopped', async () => {
    const { digest, size, bytes } = blob(1);
    const opened = await openImage(ref(), ctx());
    const cutPiece = `bytes=${3 * CHUNK}-${4 * CHUNK - 1}`;
    proxy.addRule({ match: withRange(digest, cutPiece), action: { kind: 'cut', afterBytes: 100_000 } });
    const from = proxy.requests.length;
    const got = await readBlob(opened, digest, size);
    assert.ok(got.bytes.equals(bytes));
    const seen = gets(digest, from);
    const cut = seen.find((r) => r.range === cutPiece)!;
    assert.equal(cut.fault, 'cut');
    const resumed = seen.find((r) => r.range === `bytes=${3 * CHUNK + 100_000}-${4 * CHUNK - 1}`);
    assert.ok(resumed !== undefined, `no resume of the cut piece: ${JSON.stringify(seen.map((r) => r.range))}`);
    assert.equal(resumed.status, 206);
    assert.ok(resumed.completed);
  });

  it('takes a stalled piece for a stall (its own timeout) and resumes it', async () => {
    const { digest, size, bytes } = blob(2);
    const opened = await openImage(ref(), ctx());
    const stalled = `bytes=${2 * CHUNK}-${3 * CHUNK - 1}`;
    proxy.addRule({ match: withRange(digest, stalled), action: { kind: 'stall', afterBytes: 50_000 } });
    const from = proxy.requests.length;
    const started = Date.now();
    const got = await readBlob(opened, digest, size);
    const took = Date.now() - started;
    assert.ok(got.bytes.equals(bytes));
    assert.ok(took >= STALL_MS && took < STALL_MS + 5_000, `took ${took} ms`);
    assert.ok(gets(digest, from).some((r) => r.range === `bytes=${2 * CHUNK + 50_000}-${3 * CHUNK - 1}`), 'the stalled piece resumed');
  });

  it('falls back to one stream when Range requests are answered with the whole blob', async () => {
    const { digest, size, bytes } = blob(1);
    const opened = await openImage(ref(), ctx());
    proxy.addRule({ match: (r) => match.blobGet(digest)(r) && r.headers.range !== undefined, action: { kind: 'ignore-range' }, times: Infinity });
    const from = proxy.requests.length;
    const got = await readBlob(opened, digest, size);
    assert.ok(got.bytes.equals(bytes));
    const seen = gets(digest, from);
    // The plain GET, the pieces asked for before a refusal came back (200), then the rest as
    // one stream (again if the head's own request was refused after that).
    const ranges = seen.map((r) => r.range);
    assert.ok(seen.length <= 2 * WINDOW, `${seen.length} requests: ${JSON.stringify(ranges)}`);
    const rest = seen.filter((r) => r.range !== undefined && r.range.endsWith(`-${size - 1}`) && Number(/^bytes=(\d+)-/.exec(r.range)![1]) % CHUNK === 0);
    assert.ok(rest.length >= 1 && rest.length <= 2, `the rest as one stream: ${JSON.stringify(ranges)}`);
    assert.ok(rest.some((r) => r.completed), 'the rest came in full');
    assert.ok(seen.every((r) => r.status === 200));
  });

  it('holds at most a window of pieces ahead of a slow reader, and starts no piece beyond it', async () => {
    const { digest, size, bytes } = blob(4);
    const opened = await openImage(ref(), ctx());
    const from = proxy.requests.length;
    const reader = await opened.openBlob({ digest, size, signal: neverAborted() });
    assert.ok(reader.stream instanceof ParallelBlobStream);
    const stream = reader.stream;
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    stream.pause();
    // Longer than the stall timeout: a paused reader is not a stalled piece.
    await new Promise((r) => setTimeout(r, STALL_MS * 3));
    assert.ok(stream.peakHeldBytes <= WINDOW * CHUNK, `held ${stream.peakHeldBytes} bytes`);
    assert.ok(stream.peakHeldBytes >= (WINDOW - 1) * CHUNK - 64 * 1024, `the pieces ahead were fetched (${stream.peakHeldBytes})`);
    assert.ok(gets(digest, from).length <= WINDOW, `requests while paused: ${gets(digest, from).length}`);
    const chunks: Buffer[] = [first];
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(Buffer.concat(chunks).equals(bytes));
    assert.ok(stream.peakHeldBytes <= WINDOW * CHUNK, `held ${stream.peakHeldBytes} bytes`);
    assert.equal(gets(digest, from).length, 1 + pieceRanges(size, CHUNK).length, 'no resumes for a slow reader');
  });

  it('keeps what all blobs of a pool hold ahead of their readers under maxHeldBytes, and each still completes', async () => {
    const limit = 2 * CHUNK;
    const context = ctx({ parallelRanges: { ...PARALLEL, maxHeldBytes: limit } });
    const opened = await openImage(ref(), context);
    const held = RegistryPool.of(context).heldBytes;
    const from = proxy.requests.length;
    const streams: ParallelBlobStream[] = [];
    const firsts: Buffer[] = [];
    for (const i of [4, 5]) {
      const { digest, size } = blob(i);
      const reader = await opened.openBlob({ digest, size, signal: neverAborted() });
      assert.ok(reader.stream instanceof ParallelBlobStream);
      const stream = reader.stream;
      firsts.push(await new Promise<Buffer>((resolve) => stream.once('data', resolve)));
      stream.pause();
      streams.push(stream);
    }
    await new Promise((r) => setTimeout(r, STALL_MS * 3));
    // Each piece in flight may take one more socket chunk (<= 64 KiB) before it stops; two windows would be ~10 pieces.
    const slack = 2 * CONNECTIONS * 64 * 1024;
    assert.ok(held.peakBytes <= limit + slack, `held ${held.peakBytes} bytes across the pool`);
    assert.ok(held.peakBytes >= limit, `the pieces ahead were fetched up to the limit (${held.peakBytes})`);
    // One after the other: the first blob completes while the second holds its share.
    for (const [n, i] of [4, 5].entries()) {
      const { digest, size, bytes } = blob(i);
      const chunks: Buffer[] = [firsts[n]!];
      for await (const chunk of streams[n] as AsyncIterable<Buffer>) chunks.push(chunk);
      assert.ok(Buffer.concat(chunks).equals(bytes), `bytes of blob ${i}`);
      assert.equal(gets(digest, from).length, 1 + pieceRanges(size, CHUNK).length, 'pieces waiting for room are not taken for stalls');
    }
    assert.ok(held.peakBytes <= limit + slack, `held ${held.peakBytes} bytes across the pool`);
    assert.equal(held.bytes, 0, 'every held byte was handed on');
  });

  it('closes every piece connection when cancelled', async () => {
    const { digest, size } = blob(4);
    const opened = await openImage(ref(), ctx({ stallTimeoutMs: 20_000 }));
    for (const n of [1, 2, 3]) {
      proxy.addRule({ match: withRange(digest, `bytes=${n * CHUNK}-${(n + 1) * CHUNK - 1}`), action: { kind: 'stall', afterBytes: 10_000 } });
    }
    const from = proxy.requests.length;
    const controller = new AbortController();
    const reader = await opened.openBlob({ digest, size, signal: controller.signal });
    const reading = readStream(reader.stream);
    while (gets(digest, from).filter((r) => r.bodyBytes > 0).length < CONNECTIONS) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await rejection(reading, CancelledError);
    const deadline = Date.now() + 3_000;
    const open = () => gets(digest, from).filter((r) => !r.completed && r.connectionClosedAt === undefined);
    while (open().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(open().map((r) => r.range), [], 'piece connections left open');
  });

  it('through a spawned layerpipe: wrong bytes in one piece are a digest mismatch, after every byte was delivered', async () => {
    const { digest, size, bytes } = blob(5);
    const env = { LAYERPIPE_PARALLEL_RANGES: '4', LAYERPIPE_RANGE_CHUNK_MB: '1', LAYERPIPE_PARALLEL_MIN_BLOB_MB: '2', LAYERPIPE_PARALLEL_SAMPLE_MS: '0', LAYERPIPE_RETRY_DELAY_MS: '20' };
    proxy.addRule({ match: withRange(digest, `bytes=${2 * MiB}-${3 * MiB - 1}`), action: { kind: 'corrupt', offset: 1000 } });
    const from = proxy.requests.length;
    const { got, err } = await withProxy({ args: ['--tls-verify=false'], env }, async (client) => {
      const transfer = await client.getBlob(await client.openImage(ref()), digest, size);
      const finished = proxyErrorOf(transfer.finish());
      return { got: await readAll(transfer.stream), err: await finished };
    });
    assert.equal(gets(digest, from).find((r) => r.fault === 'corrupt')?.status, 206, 'the corrupted piece was a range');
    assert.equal(err.method, 'FinishPipe');
    assert.match(err.message, /corrupted blob|digest/i);
    assert.equal(got.length, size, 'every byte delivered before the error');
    const wrong: number[] = [];
    for (let i = 0; i < size; i++) if (got[i] !== bytes[i]) wrong.push(i);
    assert.deepEqual(wrong, [2 * MiB + 1000], 'only the corrupted byte differs');
  });
});
