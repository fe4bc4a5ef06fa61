/**
 * When a docker:// blob is split into parallel Range requests (blob-parallel-open.ts), and the
 * settings' environment knobs (server/cli/flags.ts).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { defaultOptions } from '../../server/cli/flags';
import { splitsBlob } from '../../server/transports/docker/blob-parallel-open';

const MiB = 1024 * 1024;
const OPTS = { connections: 4, chunkBytes: 8 * MiB, minBlobBytes: 32 * MiB, sampleMs: 100, splitBelowBytesPerSecond: 100e6, remoteAfterMs: 10, maxHeldBytes: 64 * MiB } as const;

describe('splitsBlob', () => {
  it('splits a blob past the threshold when the server takes byte ranges', () => {
    assert.equal(splitsBlob(32 * MiB, { 'accept-ranges': 'bytes' }, OPTS), true);
    assert.equal(splitsBlob(512 * MiB, { 'accept-ranges': 'none, Bytes' }, OPTS), true);
  });
  it('keeps one stream without Accept-Ranges: bytes, below the threshold, unknown size, or one connection', () => {
    assert.equal(splitsBlob(512 * MiB, {}, OPTS), false);
    assert.equal(splitsBlob(512 * MiB, { 'accept-ranges': 'none' }, OPTS), false);
    assert.equal(splitsBlob(32 * MiB - 1, { 'accept-ranges': 'bytes' }, OPTS), false);
    assert.equal(splitsBlob(-1, { 'accept-ranges': 'bytes' }, { ...OPTS, minBlobBytes: 0 }), false);
    assert.equal(splitsBlob(512 * MiB, { 'accept-ranges': 'bytes' }, { ...OPTS, connections: 1 }), false);
  });
});

describe('parallel range settings', () => {
  it('default to 4 ranges of 8 MiB for blobs of 32 MiB and more after 100 ms below 100 MB/s (at once from a registry 10 ms away), 64 MiB held ahead per pool, and read the environment', () => {
    assert.deepEqual(defaultOptions({}).registry.parallelRanges, OPTS);
    const env = {
      LAYERPIPE_PARALLEL_RANGES: '1', LAYERPIPE_RANGE_CHUNK_MB: '16', LAYERPIPE_PARALLEL_MIN_BLOB_MB: '64',
      LAYERPIPE_PARALLEL_SAMPLE_MS: '0', LAYERPIPE_PARALLEL_BELOW_MBPS: '25', LAYERPIPE_PARALLEL_REMOTE_MS: '40', LAYERPIPE_RANGES_HELD_MB: '16',
    };
    assert.deepEqual(defaultOptions(env).registry.parallelRanges, { connections: 1, chunkBytes: 16 * MiB, minBlobBytes: 64 * MiB, sampleMs: 0, splitBelowBytesPerSecond: 25e6, remoteAfterMs: 40, maxHeldBytes: 16 * MiB });
    assert.equal(defaultOptions({ LAYERPIPE_PARALLEL_RANGES: '0', LAYERPIPE_RANGE_CHUNK_MB: '0' }).registry.parallelRanges.connections, 1);
  });
});
