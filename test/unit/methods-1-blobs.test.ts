/**
 * Protocol 1.0's GetBlob and GetRawBlob through a real Session, in process, on oci:, dir:,
 * oci-archive: and docker-archive: (plain and gzip-compressed layer tars, and a converted
 * config served from memory): sizes from the manifest, verification, and byte ranges checked
 * against slices of the whole blob.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DigestMismatchError, InvalidArgumentError } from '../../protocol/errors';
import { sha256Digest } from '../../server/image/digest';
import type { Session } from '../../server/service/session';
import { closeTestContext, testContext } from '../harness/context';
import { buildLocalImages, type LocalImages } from '../harness/methods-1-images';
import { writeDirImage } from '../harness/oci-builder';
import { call1, decoded, deliver, session1 } from '../harness/session-1';
import { tempDir } from '../harness/archive-fixtures';

let images: LocalImages;
let session: Session;
const ctx = testContext();

before(async () => {
  images = await buildLocalImages();
  session = session1(ctx);
});
after(async () => {
  await session.close();
  await closeTestContext(ctx);
});

const open = async (reference: string): Promise<number> => (await call1(session, 'OpenImage', { reference })).image;

/** A blob of each kind of source: the image, the digest, and the bytes it must give. */
interface BlobCase {
  readonly kind: string;
  readonly name: string;
  readonly digest: () => Promise<{ digest: string; bytes: Buffer }>;
}

async function rawRange(id: number, digest: string, offset?: number, length?: number): Promise<{ size: number; bytes: Buffer }> {
  const params = { image: id, digest, ...(offset !== undefined ? { offset } : {}), ...(length !== undefined ? { length } : {}) };
  const t = await call1(session, 'GetRawBlob', params);
  const { bytes, error } = await deliver(session, t.pending);
  assert.equal(error, undefined);
  return { size: t.size, bytes };
}

const layer = () => images.layers[1]!;
const cases = (): BlobCase[] => [
  { kind: 'oci:', name: `oci:${images.layout}:v1`, digest: async () => ({ digest: layer().digest, bytes: layer().compressed }) },
  { kind: 'dir:', name: `dir:${images.dir}`, digest: async () => ({ digest: layer().digest, bytes: layer().compressed }) },
  { kind: 'oci-archive:', name: `oci-archive:${images.ociArchive}:v1`, digest: async () => ({ digest: layer().digest, bytes: layer().compressed }) },
  { kind: 'docker-archive: (uncompressed layer tar)', name: `docker-archive:${images.dockerArchive}`, digest: async () => ({ digest: layer().diffId, bytes: Buffer.alloc(0) }) },
  { kind: 'docker-archive: (gzip layer tar, decompressed on the fly)', name: `docker-archive:${images.dockerArchiveGz}`, digest: async () => ({ digest: sha256Digest(images.gzTar), bytes: images.gzTar }) },
];

describe('GetRawBlob byte ranges', () => {
  it('every transport serves exactly the slice asked for, with size = bytes that will be sent', async () => {
    for (const c of cases()) {
      const id = await open(c.name);
      const { digest } = await c.digest();
      const whole = await rawRange(id, digest);
      assert.equal(sha256Digest(whole.bytes), digest, `${c.kind}: the whole blob`);
      assert.equal(whole.size, whole.bytes.length, c.kind);
      const n = whole.bytes.length;
      const probes: [number | undefined, number | undefined][] = [
        [0, undefined], [1000, 5000], [undefined, 10], [n - 10, undefined], [n - 10, 1000], [n, undefined], [5, 0], [0, n],
        [70_000, 150_000],
      ];
      for (const [offset, length] of probes) {
        const got = await rawRange(id, digest, offset, length);
        const start = offset ?? 0;
        const want = whole.bytes.subarray(start, length === undefined ? n : Math.min(n, start + length));
        assert.equal(got.size, want.length, `${c.kind} offset ${offset} length ${length}: size`);
        assert.ok(got.bytes.equals(want), `${c.kind} offset ${offset} length ${length}: bytes`);
      }
      await assert.rejects(call1(session, 'GetRawBlob', { image: id, digest, offset: n + 1 }), (err: unknown) =>
        err instanceof InvalidArgumentError && /offset \d+ is past the end/.test(err.message), c.kind);
      // The session keeps serving the image after a refused range.
      assert.equal((await rawRange(id, digest, 0, 3)).bytes.length, 3);
      await call1(session, 'CloseImage', { image: id });
    }
  });

  it('a converted Docker config, served from memory, is ranged too', async () => {
    const id = await open(`dir:${images.dir}`);
    const full = await call1(session, 'GetFullConfig', { image: id });
    const bytes = decoded(full.data);
    const got = await rawRange(id, full.digest, 10, 20);
    assert.deepEqual(got, { size: 20, bytes: bytes.subarray(10, 30) });
    await assert.rejects(call1(session, 'GetRawBlob', { image: id, digest: full.digest, offset: bytes.length + 1 }), InvalidArgumentError);
    await call1(session, 'CloseImage', { image: id });
  });
});

describe('GetBlob', () => {
  it('without a size uses the manifest\'s size for the digest, and verifies', async () => {
    for (const c of cases()) {
      const id = await open(c.name);
      const { digest } = await c.digest();
      const layers = (await call1(session, 'GetLayerInfo', { image: id })).layers;
      const listed = layers.find((l) => l.digest === digest)!;
      for (const size of [undefined, -1]) {
        const t = await call1(session, 'GetBlob', { image: id, digest, ...(size === undefined ? {} : { size }) });
        assert.equal(t.size, listed.size, c.kind);
        const { bytes, error } = await deliver(session, t.pending);
        assert.equal(error, undefined, c.kind);
        assert.equal(sha256Digest(bytes), digest);
      }
      await call1(session, 'CloseImage', { image: id });
    }
  });

  it('the converted config has the size the converted manifest gives it', async () => {
    const id = await open(`dir:${images.dir}`);
    const full = await call1(session, 'GetFullConfig', { image: id });
    const t = await call1(session, 'GetBlob', { image: id, digest: full.digest });
    assert.equal(t.size, decoded(full.data).length);
    assert.deepEqual((await deliver(session, t.pending)).bytes, decoded(full.data));
    await call1(session, 'CloseImage', { image: id });
  });

  it('a blob the manifest does not list is still sent and digest-verified (size from the source)', async () => {
    const id = await open(`oci:${images.layout}:v1`);
    const t = await call1(session, 'GetBlob', { image: id, digest: images.v1.digest });
    assert.equal(t.size, images.v1.bytes.length);
    assert.deepEqual(await deliver(session, t.pending), { bytes: images.v1.bytes, error: undefined });
    await call1(session, 'CloseImage', { image: id });
  });

  it('a corrupted blob without a size: every byte is delivered, then the digest mismatch is reported', async () => {
    const dir = path.join(tempDir('methods-1-corrupt'), 'dir');
    writeDirImage(dir, { layers: images.layers });
    const bad = Buffer.from(layer().compressed);
    bad[bad.length - 1] ^= 0xff;
    writeFileSync(path.join(dir, layer().digest.slice(7)), bad);
    const id = await open(`dir:${dir}`);
    const t = await call1(session, 'GetBlob', { image: id, digest: layer().digest });
    assert.equal(t.size, bad.length);
    const { bytes, error } = await deliver(session, t.pending);
    assert.ok(bytes.equals(bad), 'no verified byte is withheld');
    assert.ok(error instanceof DigestMismatchError, `got ${String(error)}`);
    // GetRawBlob hands the same bytes over unverified.
    assert.ok((await rawRange(id, layer().digest)).bytes.equals(bad));
    await call1(session, 'CloseImage', { image: id });
  });
});

describe('archives after a stopped read', () => {
  it('a blob stream destroyed mid-way (a client that stopped) leaves the archive readable for every other blob', async () => {
    for (const name of [`oci-archive:${images.ociArchive}:v1`, `docker-archive:${images.dockerArchiveGz}`]) {
      const id = await open(name);
      const { layers } = await call1(session, 'GetLayerInfo', { image: id });
      const digest = layers[layers.length - 1]!.digest;
      const t = await call1(session, 'GetRawBlob', { image: id, digest, offset: 1, length: 100_000 });
      const stream = t.pending.body.stream;
      await new Promise<void>((resolve) => stream.once('readable', () => resolve()));
      stream.destroy();
      const again = await rawRange(id, digest);
      assert.equal(sha256Digest(again.bytes), digest, name);
      await call1(session, 'CloseImage', { image: id });
    }
  });
});
