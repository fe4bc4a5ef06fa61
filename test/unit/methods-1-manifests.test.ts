/**
 * Protocol 1.0's image description methods through a real Session, in process, on oci:, dir:,
 * oci-archive:, docker-archive: and multi-arch images: GetManifest (default, raw, platform)
 * against 0.2.x's answer and `skopeo inspect --raw`, ListInstances, ListTags, GetFullConfig,
 * GetConfig and GetLayerInfo.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError, PlatformNotFoundError, UnsupportedError } from '../../protocol/errors';
import { sha256Digest } from '../../server/image/digest';
import type { Session } from '../../server/service/session';
import { skopeo } from '../harness/archive-fixtures';
import { closeTestContext, testContext } from '../harness/context';
import { buildLocalImages, type LocalImages } from '../harness/methods-1-images';
import { MT } from '../harness/oci-builder';
import { call1, decoded, deliver, session1 } from '../harness/session-1';

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

/** What 0.2.x's GetManifest answers for the same image: its value (the digest) and its body. */
async function manifest02(id: number): Promise<{ digest: string; bytes: Buffer }> {
  const result = await session.call('GetManifest', [id]);
  const { bytes, error } = await deliver(session, result.pending!);
  assert.equal(error, undefined);
  return { digest: result.value as string, bytes };
}

const names = (): Record<string, string> => ({
  'oci:': `oci:${images.layout}:v1`,
  'dir:': `dir:${images.dir}`,
  'oci-archive:': `oci-archive:${images.ociArchive}:v1`,
  'docker-archive:': `docker-archive:${images.dockerArchive}`,
  'oci: index': `oci:${images.multi}:multi`,
  'oci: Docker list': `oci:${images.dockerList}`,
});

describe('GetManifest', () => {
  it('without options answers as 0.2.x does on every transport: same digest, same bytes, OCI media type', async () => {
    for (const [kind, name] of Object.entries(names())) {
      const id = await open(name);
      const m = await call1(session, 'GetManifest', { image: id });
      const old = await manifest02(id);
      assert.equal(m.digest, old.digest, kind);
      assert.deepEqual(decoded(m.data), old.bytes, kind);
      assert.equal(m.mediaType, MT.ociManifest, kind);
      assert.equal((JSON.parse(decoded(m.data).toString()) as { mediaType: string }).mediaType, MT.ociManifest, kind);
      await call1(session, 'CloseImage', { image: id });
    }
  });

  it('converted Docker manifests keep the digest of the manifest as stored (0.2.x and skopeo answer that one)', async () => {
    const id = await open(`dir:${images.dir}`);
    const m = await call1(session, 'GetManifest', { image: id });
    assert.equal(m.digest, images.dirManifest.digest);
    assert.notEqual(sha256Digest(decoded(m.data)), m.digest, 'the bytes are the converted ones');
    await call1(session, 'CloseImage', { image: id });
  });

  it('raw: the manifest or index exactly as `skopeo inspect --raw` shows it, with its own digest and media type', async () => {
    const want: Record<string, string> = {
      'oci:': MT.ociManifest, 'dir:': MT.dockerManifest, 'oci-archive:': MT.ociManifest, 'docker-archive:': MT.dockerManifest,
      'oci: index': MT.ociIndex, 'oci: Docker list': MT.dockerList,
    };
    for (const [kind, name] of Object.entries(names())) {
      const id = await open(name);
      const m = await call1(session, 'GetManifest', { image: id, raw: true });
      const bytes = decoded(m.data);
      assert.equal(bytes.toString('utf8'), skopeo(['inspect', '--raw', name]), kind);
      assert.equal(m.digest, sha256Digest(bytes), kind);
      assert.equal(m.mediaType, want[kind], kind);
      await call1(session, 'CloseImage', { image: id });
    }
  });

  it('platform picks that instance of an OCI index: converted like the default, or as stored with raw', async () => {
    const id = await open(`oci:${images.multi}:multi`);
    for (const { platform, manifest } of images.multiInstances) {
      const m = await call1(session, 'GetManifest', { image: id, platform });
      assert.equal(m.digest, manifest.digest, JSON.stringify(platform));
      assert.deepEqual(decoded(m.data), manifest.bytes);
      const raw = await call1(session, 'GetManifest', { image: id, platform, raw: true });
      assert.deepEqual(raw, { digest: manifest.digest, mediaType: MT.ociManifest, data: manifest.bytes.toString('base64') });
    }
    // No variant named: the architecture's best variant the list has.
    const arm = await call1(session, 'GetManifest', { image: id, platform: { os: 'linux', architecture: 'arm' } });
    assert.equal(arm.digest, images.multiInstances[2]!.manifest.digest);
    await call1(session, 'CloseImage', { image: id });
  });

  it('platform on a Docker manifest list converts the instance to OCI, keeping the stored digest', async () => {
    const id = await open(`oci:${images.dockerList}`);
    const { platform, manifest } = images.dockerListInstances[1]!;
    const m = await call1(session, 'GetManifest', { image: id, platform });
    assert.equal(m.digest, manifest.digest);
    assert.equal(m.mediaType, MT.ociManifest);
    const converted = JSON.parse(decoded(m.data).toString()) as { mediaType: string; config: { mediaType: string; digest: string } };
    assert.equal(converted.mediaType, MT.ociManifest);
    assert.equal(converted.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    const raw = await call1(session, 'GetManifest', { image: id, platform, raw: true });
    assert.equal(raw.mediaType, MT.dockerManifest);
    assert.deepEqual(decoded(raw.data), manifest.bytes);
    await call1(session, 'CloseImage', { image: id });
  });

  it('a platform the list lacks is PlatformNotFoundError naming what it has; the session keeps serving', async () => {
    const id = await open(`oci:${images.multi}:multi`);
    await assert.rejects(call1(session, 'GetManifest', { image: id, platform: { os: 'linux', architecture: 's390x' } }), (err: unknown) =>
      err instanceof PlatformNotFoundError && /linux\/s390x/.test(err.message) && /linux\/arm64\/v8/.test(err.message));
    await assert.rejects(call1(session, 'GetManifest', { image: id, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } }), PlatformNotFoundError);
    assert.equal((await call1(session, 'GetManifest', { image: id })).mediaType, MT.ociManifest);
    await call1(session, 'CloseImage', { image: id });
  });

  it('a single image answers for the platform its config declares, and refuses another clearly', async () => {
    const id = await open(`oci:${images.layout}:v1`);
    const m = await call1(session, 'GetManifest', { image: id, platform: { os: 'linux', architecture: 'amd64' } });
    assert.equal(m.digest, images.v1.digest);
    await assert.rejects(call1(session, 'GetManifest', { image: id, platform: { os: 'linux', architecture: 'arm64' } }), (err: unknown) =>
      err instanceof PlatformNotFoundError && /not a list/.test(err.message) && /linux\/amd64/.test(err.message));
    await call1(session, 'CloseImage', { image: id });
  });
});

describe('ListInstances', () => {
  it('lists the top-level index with digests, media types, sizes and platforms', async () => {
    const id = await open(`oci:${images.multi}:multi`);
    const { instances } = await call1(session, 'ListInstances', { image: id });
    assert.deepEqual(instances, images.multiInstances.map((i) => ({ digest: i.manifest.digest, mediaType: MT.ociManifest, size: i.manifest.bytes.length, platform: i.platform })));
    await call1(session, 'CloseImage', { image: id });
  });

  it('is empty for a single image', async () => {
    for (const name of [`oci:${images.layout}:v1`, `dir:${images.dir}`, `docker-archive:${images.dockerArchive}`]) {
      const id = await open(name);
      assert.deepEqual(await call1(session, 'ListInstances', { image: id }), { instances: [] });
      await call1(session, 'CloseImage', { image: id });
    }
  });
});

describe('ListTags', () => {
  it('lists an OCI layout\'s ref names, in a directory and in an archive', async () => {
    assert.deepEqual(await call1(session, 'ListTags', { reference: `oci:${images.layout}` }), { tags: ['v1', 'v2'] });
    assert.deepEqual(await call1(session, 'ListTags', { reference: `oci-archive:${images.ociArchive}` }), { tags: ['v1', 'v2'] });
    assert.deepEqual(await call1(session, 'ListTags', { reference: `oci:${images.dockerList}` }), { tags: [] });
  });

  it('refuses a ref in the reference, transports without tags, and malformed names, each clearly', async () => {
    await assert.rejects(call1(session, 'ListTags', { reference: `oci:${images.layout}:v1` }), (err: unknown) => err instanceof InvalidArgumentError && /no ref allowed/.test(err.message));
    await assert.rejects(call1(session, 'ListTags', { reference: `dir:${images.dir}` }), (err: unknown) => err instanceof UnsupportedError && /dir: transport/.test(err.message));
    await assert.rejects(call1(session, 'ListTags', { reference: `docker-archive:${images.dockerArchive}` }), UnsupportedError);
    await assert.rejects(call1(session, 'ListTags', { reference: 'nosuch:x' }), InvalidArgumentError);
    await assert.rejects(call1(session, 'ListTags', { reference: 'docker://example.com/a:tag' }), (err: unknown) => err instanceof InvalidArgumentError && /no tag or digest/.test(err.message));
  });
});

describe('configs and layers', () => {
  it('GetFullConfig gives the digest of the bytes it returns (re-serialised, so a converted manifest names it)', async () => {
    const converted = ['dir:', 'docker-archive:', 'oci: Docker list'];
    for (const [kind, name] of Object.entries(names())) {
      const id = await open(name);
      const full = await call1(session, 'GetFullConfig', { image: id });
      assert.equal(full.digest, sha256Digest(decoded(full.data)), kind);
      const m = JSON.parse(decoded((await call1(session, 'GetManifest', { image: id })).data).toString()) as { config: { digest: string } };
      if (converted.includes(kind)) assert.equal(full.digest, m.config.digest, kind);
      const runtime = JSON.parse(decoded((await call1(session, 'GetConfig', { image: id })).data).toString()) as unknown;
      assert.deepEqual(runtime, (JSON.parse(decoded(full.data).toString()) as { config: unknown }).config, kind);
      await call1(session, 'CloseImage', { image: id });
    }
  });

  it('GetLayerInfo names mediaType, with the 0.2.x values', async () => {
    const id = await open(`dir:${images.dir}`);
    const { layers } = await call1(session, 'GetLayerInfo', { image: id });
    const old = (await session.call('GetLayerInfo', [id])).value as { digest: string; size: number; media_type: string }[];
    assert.deepEqual(layers, old.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.media_type })));
    assert.deepEqual(layers.map((l) => l.digest), images.layers.map((l) => l.digest));
    assert.equal(layers[0]!.mediaType, MT.dockerLayerGzip);
    await call1(session, 'CloseImage', { image: id });
  });
});
