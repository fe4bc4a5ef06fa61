/**
 * Whether a large blob goes parallel is decided per link, by measuring its first stream
 * (server/transports/docker/blob-parallel.ts): a fast link (loopback, through the fault proxy
 * that records every request) stays one stream with no Range request at all; a link capped per
 * connection (the shaping proxy) is split after the sample, the rest as Range requests on
 * several connections, the bytes identical.
 */
import { strict as assert } from 'node:assert';
import { after, afterEach, before, describe, it } from 'node:test';
import { neverAborted } from '../../harness/context';
import { openImage, readStream, TestContexts } from '../../harness/docker-source';
import { match, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy';
import { pushRawBlobImage, randomBlob, type RawBlobImage } from '../../harness/raw-blob-image';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { sha256Hex } from '../../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';
import { startShapingProxy } from '../../harness/shaping-proxy';
import { ParallelBlobStream } from '../../../server/transports/docker/blob-parallel';

const skip = registrySuiteSkip();
const MiB = 1024 * 1024;
const CHUNK = 256 * 1024;
const SAMPLE_MS = 60;
/** Far below loopback even on a busy machine, far above the capped link. */
const BELOW = 10e6;
/** Loopback's floor in the fast-link case: still above the capped link's 2 MB/s. */
const FAST_FLOOR = 2.5e6;
const PARALLEL = { connections: 4, chunkBytes: CHUNK, minBlobBytes: 4 * CHUNK, sampleMs: SAMPLE_MS, splitBelowBytesPerSecond: BELOW,
  // These cases are about the sample; the one for a distant registry sets its own.
  remoteAfterMs: 60_000, maxHeldBytes: 64 * CHUNK } as const;
const TUNING = { stallTimeoutMs: 5_000, retryDelayMs: 20, retryAttempts: 3, parallelRanges: PARALLEL } as const;

describe('parallel ranges decided by the measured rate of the first stream', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let image: RawBlobImage;
  let bytes: Buffer;
  const contexts = new TestContexts();

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    bytes = randomBlob(24 * MiB + 321);
    image = await pushRawBlobImage(registry, 'decide/big', 'v1', [bytes]);
  });
  after(() => registry?.stop());
  afterEach(() => contexts.closeAll());

  it('keeps a fast link to one stream: judged fast, no Range request', async () => {
    const proxy: FaultProxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    try {
      const digest = image.layers[0]!.digest;
      // A longer sample and a lower bar here: loopback through the in-process fault proxy on a
      // busy machine must still read as fast in every sample (it is measured until it ends).
      const fast = { ...PARALLEL, sampleMs: 300, splitBelowBytesPerSecond: FAST_FLOOR };
      const opened = await openImage(`docker://${proxy.host}/decide/big:v1`, contexts.with({ tlsVerify: false, ...TUNING, parallelRanges: fast }));
      const from = proxy.requests.length;
      const reader = await opened.openBlob({ digest, size: bytes.length, signal: neverAborted() });
      assert.ok(reader.stream instanceof ParallelBlobStream, 'a blob that could be split');
      const stream = reader.stream;
      const got = await readStream(stream);
      assert.equal(sha256Hex(got), digest);
      // An idle machine may move the whole blob within the sample: then nothing was judged.
      const rate = stream.sampledBytesPerSecond;
      assert.ok(rate === undefined || rate >= FAST_FLOOR, `the first stream was judged fast (${rate} B/s)`);
      assert.equal(stream.splitAt, undefined);
      const seen = proxy.requests.slice(from).filter(match.blobGet(digest));
      assert.deepEqual(seen.map((r) => r.headers.range), [undefined], 'one plain GET, no Range request');
      assert.equal(stream.pieceRequests, 1);
    } finally {
      await proxy.close();
    }
  });

  it('splits a link capped per connection after the sample, over several connections', async () => {
    const rate = 2_000_000;
    const shaper = await startShapingProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: rate, rttMs: 20 });
    try {
      const small = randomBlob(3 * MiB + 17);
      const capped = await pushRawBlobImage(registry, 'decide/capped', 'v1', [small]);
      const digest = capped.layers[0]!.digest;
      const opened = await openImage(`docker://${shaper.host}/decide/capped:v1`, contexts.with({ tlsVerify: false, ...TUNING }));
      const connectionsBefore = shaper.connectionCount();
      const reader = await opened.openBlob({ digest, size: small.length, signal: neverAborted() });
      assert.ok(reader.stream instanceof ParallelBlobStream);
      const stream = reader.stream;
      const got = await readStream(stream);
      assert.ok(got.equals(small), 'the same bytes');
      const measured = stream.sampledBytesPerSecond;
      assert.ok(measured !== undefined && measured < BELOW, `the first stream was judged slow (${measured} B/s)`);
      const at = stream.splitAt;
      assert.ok(at !== undefined && at > 0 && at < small.length, `split at ${at}`);
      assert.ok(stream.pieceRequests > 2, `${stream.pieceRequests} requests`);
      assert.ok(shaper.connectionCount() - connectionsBefore >= 2, 'new connections for the pieces');
      assert.ok(shaper.peakConnections() >= 3, `at most ${shaper.peakConnections()} connections at once`);
    } finally {
      await shaper.close();
    }
  });

  it('resumes a first stream cut on a capped link from its own last byte, and still splits it', async () => {
    const rate = 2_000_000;
    const shaper = await startShapingProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: rate, rttMs: 20 });
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: shaper.port });
    try {
      const small = randomBlob(3 * MiB + 5);
      const capped = await pushRawBlobImage(registry, 'decide/cut', 'v1', [small]);
      const digest = capped.layers[0]!.digest;
      proxy.addRule({ match: (r) => match.blobGet(digest)(r) && r.headers.range === undefined, action: { kind: 'cut', afterBytes: 150_000 } });
      const opened = await openImage(`docker://${proxy.host}/decide/cut:v1`, contexts.with({ tlsVerify: false, ...TUNING }));
      const from = proxy.requests.length;
      const reader = await opened.openBlob({ digest, size: small.length, signal: neverAborted() });
      assert.ok(reader.stream instanceof ParallelBlobStream);
      const stream = reader.stream;
      const got = await readStream(stream);
      assert.ok(got.equals(small), 'the same bytes');
      const seen = proxy.requests.slice(from).filter(match.blobGet(digest));
      assert.equal(seen[0]!.fault, 'cut');
      assert.ok(seen.some((r) => r.headers.range?.startsWith('bytes=150000-')), `the first stream resumed at its last byte: ${JSON.stringify(seen.map((r) => r.headers.range))}`);
      assert.ok(stream.splitAt !== undefined, 'split after the sample');
      assert.ok(seen.every((r) => r.headers.range === undefined || r.status === 206));
    } finally {
      await proxy.close();
      await shaper.close();
    }
  });

  it('splits at once, without sampling, when the first answer comes from a distant registry', async () => {
    // 40 ms of added round trip: the plain GET's answer takes at least that.
    const shaper = await startShapingProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: 50_000_000, rttMs: 40 });
    try {
      const digest = image.layers[0]!.digest;
      const distant = { ...PARALLEL, remoteAfterMs: 20 };
      const opened = await openImage(`docker://${shaper.host}/decide/big:v1`, contexts.with({ tlsVerify: false, ...TUNING, parallelRanges: distant }));
      const reader = await opened.openBlob({ digest, size: bytes.length, signal: neverAborted() });
      assert.ok(reader.stream instanceof ParallelBlobStream);
      const stream = reader.stream;
      const got = await readStream(stream);
      assert.equal(sha256Hex(got), digest);
      assert.equal(stream.sampledBytesPerSecond, undefined, 'never sampled');
      assert.equal(stream.splitAt, CHUNK, 'the first stream is one piece long');
      assert.ok(stream.pieceRequests > 2, `${stream.pieceRequests} requests`);
    } finally {
      await shaper.close();
    }
  });

  it('does not take a nearby registry for a distant one because one answer was slow', async () => {
    const proxy: FaultProxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    try {
      const digest = image.layers[0]!.digest;
      // The blob GET alone waits 300 ms (a busy registry); the ping and the manifest came fast.
      proxy.addRule({ match: match.blobGet(digest), action: { kind: 'delay', ms: 300 } });
      const near = { ...PARALLEL, sampleMs: 300, splitBelowBytesPerSecond: FAST_FLOOR, remoteAfterMs: 100 };
      const opened = await openImage(`docker://${proxy.host}/decide/big:v1`, contexts.with({ tlsVerify: false, ...TUNING, parallelRanges: near }));
      const from = proxy.requests.length;
      const reader = await opened.openBlob({ digest, size: bytes.length, signal: neverAborted() });
      assert.ok(reader.stream instanceof ParallelBlobStream);
      const stream = reader.stream;
      assert.equal(sha256Hex(await readStream(stream)), digest);
      assert.equal(stream.splitAt, undefined, 'not split at once, nor after a sample');
      const seen = proxy.requests.slice(from).filter(match.blobGet(digest));
      assert.deepEqual(seen.map((r) => [r.headers.range, r.fault]), [[undefined, 'delay']], 'one plain GET, the delayed one');
    } finally {
      await proxy.close();
    }
  });

  it('leaves a stream alone when its reader, not the link, sets the pace', async () => {
    const shaper = await startShapingProxy({ target: { host: '127.0.0.1', port: registry.port }, bytesPerSecond: 4_000_000, rttMs: 0 });
    try {
      const small = randomBlob(3 * MiB + 29);
      const capped = await pushRawBlobImage(registry, 'decide/slow-reader', 'v1', [small]);
      const digest = capped.layers[0]!.digest;
      const opened = await openImage(`docker://${shaper.host}/decide/slow-reader:v1`, contexts.with({ tlsVerify: false, ...TUNING }));
      const reader = await opened.openBlob({ digest, size: small.length, signal: neverAborted() });
      assert.ok(reader.stream instanceof ParallelBlobStream);
      const stream = reader.stream;
      // About 1.5 MB/s: slower than the 4 MB/s link, so the stream waits on this reader.
      const parts: Buffer[] = [];
      for await (const chunk of stream) {
        parts.push(chunk as Buffer);
        await new Promise((resolve) => setTimeout(resolve, (chunk as Buffer).length / 1500));
      }
      assert.ok(Buffer.concat(parts).equals(small), 'the same bytes');
      const measured = stream.sampledBytesPerSecond;
      assert.ok(measured !== undefined && measured < BELOW, `the reader's pace was measured (${measured} B/s), below the bar`);
      assert.equal(stream.splitAt, undefined, 'not split: more connections would not read faster');
      assert.equal(stream.pieceRequests, 1);
    } finally {
      await shaper.close();
    }
  });
});
