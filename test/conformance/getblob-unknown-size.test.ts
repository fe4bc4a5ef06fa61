/**
 * GetBlob with size -1 (unknown) on the 0.2.x wire, against skopeo 1.9.3: both accept the
 * request, answer with the blob's size and stream every byte; a corrupted blob fails FinishPipe
 * with the same message. They part at FinishPipe of a good blob: skopeo reads -1 as an
 * unsigned size and reports "expected 18446744073709551615 bytes in blob", layerpipe treats it
 * as unknown and checks the digest only (PROTOCOL.md, "Requests and replies").
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, ProxyError, readAll } from '../../clients/typescript';
import { makeLayer, writeOciImage } from '../harness/oci-builder';
import { findProgram } from '../harness/registry-tools';

const skip = findProgram('skopeo') === undefined ? 'skopeo is not installed (apt-get install skopeo)' : false;

interface BlobOutcome {
  readonly size: number;
  readonly bytes: Buffer;
  readonly finishError: string | undefined;
}

async function getBlobUnknownSize(command: 'skopeo' | undefined, image: string, digest: string): Promise<BlobOutcome> {
  const proxy = await ImageProxy.spawn({ ...(command === undefined ? {} : { command }), args: ['--insecure-policy'] });
  try {
    await proxy.initialize();
    const id = await proxy.openImage(image);
    const blob = await proxy.getBlob(id, digest, -1);
    const [bytes, finished] = await Promise.all([readAll(blob.stream), blob.finish().then(() => undefined, (err: unknown) => err)]);
    if (finished !== undefined && !(finished instanceof ProxyError)) throw finished;
    return { size: blob.size, bytes, finishError: finished?.message };
  } finally {
    await proxy.shutdown();
  }
}

describe('GetBlob with size -1', { skip }, () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-unknown-size-'));
  const layer = makeLayer({ 'data.bin': Buffer.alloc(200_000, 3), 'x.txt': 'x\n' });
  after(() => rmSync(tmp, { recursive: true, force: true }));
  before(() => {
    writeOciImage(path.join(tmp, 'good'), { layers: [layer] });
    writeOciImage(path.join(tmp, 'corrupt'), { layers: [layer] });
    const bad = Buffer.from(layer.compressed);
    bad[100] ^= 0xff;
    writeFileSync(path.join(tmp, 'corrupt', 'blobs', 'sha256', layer.digest.slice(7)), bad);
  });

  it('is accepted: the same size and bytes as skopeo; layerpipe then checks the digest only', async () => {
    const image = `oci:${tmp}/good:latest`;
    const ours = await getBlobUnknownSize(undefined, image, layer.digest);
    const theirs = await getBlobUnknownSize('skopeo', image, layer.digest);
    assert.equal(ours.size, theirs.size);
    assert.equal(ours.size, layer.compressed.length);
    assert.ok(ours.bytes.equals(theirs.bytes));
    assert.ok(ours.bytes.equals(layer.compressed));
    assert.equal(ours.finishError, undefined);
    assert.match(theirs.finishError ?? '', /expected 18446744073709551615 bytes in blob, got \d+/);
  });

  it('a corrupted blob: FinishPipe fails with skopeo\'s message', async () => {
    const image = `oci:${tmp}/corrupt:latest`;
    const ours = await getBlobUnknownSize(undefined, image, layer.digest);
    const theirs = await getBlobUnknownSize('skopeo', image, layer.digest);
    assert.ok(ours.bytes.equals(theirs.bytes));
    assert.match(ours.finishError ?? '', new RegExp(`corrupted blob, expecting ${layer.digest}$`));
    assert.equal(ours.finishError, theirs.finishError);
  });
});
