/** The registry pool's manifest cache: bounded by bytes, least recently used out first, kept apart per client and repository. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManifestCache } from '../../server/transports/docker/manifest-cache';

const manifest = (size: number, fill = 'a'): { bytes: Buffer; mediaType: string } => ({ bytes: Buffer.alloc(size, fill), mediaType: 'application/vnd.oci.image.manifest.v1+json' });

describe('ManifestCache', () => {
  it('answers what was stored, for the same client and repository only', () => {
    const cache = new ManifestCache(1000);
    const clientA = {};
    const clientB = {};
    const m = manifest(10);
    cache.putVerified(clientA, 'repo', 'sha256:1', m);
    assert.equal(cache.get(clientA, 'repo', 'sha256:1'), m);
    assert.equal(cache.get(clientB, 'repo', 'sha256:1'), undefined, 'another identity or endpoint does not see it');
    assert.equal(cache.get(clientA, 'other', 'sha256:1'), undefined, 'another repository does not see it');
    assert.equal(cache.get(clientA, 'repo', 'sha256:2'), undefined);
  });

  it('stays within its byte bound, dropping the least recently used first', () => {
    const cache = new ManifestCache(300);
    const client = {};
    cache.putVerified(client, 'r', 'd1', manifest(100, '1'));
    cache.putVerified(client, 'r', 'd2', manifest(100, '2'));
    cache.putVerified(client, 'r', 'd3', manifest(100, '3'));
    assert.ok(cache.get(client, 'r', 'd1') !== undefined); // d1 is now the most recently used
    cache.putVerified(client, 'r', 'd4', manifest(100, '4'));
    assert.equal(cache.get(client, 'r', 'd2'), undefined, 'the least recently used went');
    assert.deepEqual(['d1', 'd3', 'd4'].map((d) => cache.get(client, 'r', d) !== undefined), [true, true, true]);
    assert.equal(cache.bytes, 300);
    cache.putVerified(client, 'r', 'huge', manifest(301));
    assert.equal(cache.get(client, 'r', 'huge'), undefined, 'a manifest larger than the bound is not kept');
    assert.equal(cache.bytes, 300);
    cache.putVerified(client, 'r', 'd4', manifest(50, '4'));
    assert.equal(cache.bytes, 250, 'a replaced entry counts once');
    cache.clear();
    assert.deepEqual([cache.bytes, cache.count], [0, 0]);
  });
});
