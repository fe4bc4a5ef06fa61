/**
 * oci-archive: and docker-archive: conformance with the oracle: archives written by skopeo
 * (and by GNU tar / gzip from skopeo's output) read through layerpipe and through skopeo 1.9.3
 * must give the same GetManifest digest and bytes, the same GetFullConfig/GetConfig, and the
 * same bytes for every layer. The docker-archive manifest generated from manifest.json must be
 * byte for byte what `skopeo inspect --raw` prints. `layerpipe inspect` reads both transports.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { ImageNotFoundError, InvalidArgumentError } from '../../protocol/errors';
import { buildRealArchives, openInProcess, rejectionOf, skopeo, type RealArchives } from '../harness/archive-fixtures';
import { proxyErrorOf, snapshotImage, withProxy, type ImageSnapshot, type ProxyProgram } from '../harness/registry-proxy-client';

const LAYERPIPE = path.resolve(__dirname, '..', '..', '..', 'bin', 'layerpipe');
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

async function snapshotWith(program: ProxyProgram, ref: string): Promise<ImageSnapshot> {
  return withProxy({ program }, (proxy) => snapshotImage(proxy, ref));
}

async function assertSameAsSkopeo(ref: string, skopeoRef = ref): Promise<ImageSnapshot> {
  const ours = await snapshotWith('layerpipe', ref);
  const theirs = await snapshotWith('skopeo', skopeoRef);
  assert.deepEqual(ours, theirs, `${ref} differs between layerpipe and skopeo`);
  return ours;
}

describe('archives written by real tools, compared with skopeo 1.9.3', () => {
  let a: RealArchives;
  before(() => {
    a = buildRealArchives();
  });

  it('oci-archive with one image: with and without :REF', async () => {
    const snap = await assertSameAsSkopeo(`oci-archive:${a.ociSingle}:v1`);
    assert.equal(snap.manifestDigest, a.manifests.first.digest);
    assert.equal(snap.layers.length, 2);
    await assertSameAsSkopeo(`oci-archive:${a.ociSingle}`);
  });

  it('oci-archive packed by GNU tar with two images ("./" names), each chosen by ref', async () => {
    const v1 = await assertSameAsSkopeo(`oci-archive:${a.ociMulti}:v1`);
    const v2 = await assertSameAsSkopeo(`oci-archive:${a.ociMulti}:v2`);
    assert.equal(v1.manifestDigest, a.manifests.first.digest);
    assert.equal(v2.manifestDigest, a.manifests.second.digest);
    assert.equal((v2.fullConfig as { architecture: string }).architecture, 'arm64');
  });

  it('gzip-compressed oci-archive', async () => {
    await assertSameAsSkopeo(`oci-archive:${a.ociMultiGz}:v2`);
    await assertSameAsSkopeo(`oci-archive:${a.ociMultiGz}:v1`);
  });

  it('docker-archive with one image: by default, by each tag, by @0', async () => {
    const base = await assertSameAsSkopeo(`docker-archive:${a.dockerSingle}`);
    for (const suffix of [':busybox', ':docker.io/library/busybox:latest', ':example.com/team/app:v1', ':@0']) {
      const snap = await snapshotWith('layerpipe', `docker-archive:${a.dockerSingle}${suffix}`);
      assert.deepEqual(snap, base, suffix);
    }
    await assertSameAsSkopeo(`docker-archive:${a.dockerSingle}:busybox`);
  });

  it('multi-image docker save archive: @N and NAME:TAG choose the same images as skopeo', async () => {
    const first = await assertSameAsSkopeo(`docker-archive:${a.dockerMulti}:@0`);
    const second = await assertSameAsSkopeo(`docker-archive:${a.dockerMulti}:@1`);
    assert.notEqual(first.manifestDigest, second.manifestDigest);
    assert.deepEqual(await snapshotWith('layerpipe', `docker-archive:${a.dockerMulti}:localhost/second:2`), second);
    assert.deepEqual(await snapshotWith('layerpipe', `docker-archive:${a.dockerMulti}:example.com/team/app:v1`), first);
    await assertSameAsSkopeo(`docker-archive:${a.dockerMulti}:localhost/second:2`);
  });

  it('gzip-compressed docker-archive (skopeo 1.9.3 fails on it; the answers match its uncompressed original)', async () => {
    const ours = await snapshotWith('layerpipe', `docker-archive:${a.dockerMultiGz}:@1`);
    assert.deepEqual(ours, await snapshotWith('skopeo', `docker-archive:${a.dockerMulti}:@1`));
  });

  it('the generated Docker manifest and the config are byte for byte skopeo inspect --raw', async () => {
    for (const ref of [`docker-archive:${a.dockerSingle}`, `docker-archive:${a.dockerMulti}:@1`]) {
      const image = await openInProcess(ref);
      try {
        const raw = Buffer.from(skopeo(['inspect', '--raw', ref]));
        assert.equal(image.manifestBytes.toString(), raw.toString(), ref);
        const config = Buffer.from(skopeo(['inspect', '--config', '--raw', ref]));
        assert.equal((await image.storedConfig()).toString(), config.toString(), ref);
        const parsed = JSON.parse(raw.toString()) as { layers: { digest: string; size: number; mediaType: string }[] };
        assert.deepEqual(image.layerInfos(), parsed.layers.map((l) => ({ digest: l.digest, size: l.size, media_type: l.mediaType })));
        for (const l of image.layerInfos()) assert.equal(l.media_type, DOCKER_LAYER);
      } finally {
        await image.close();
      }
    }
  });

  it('GetLayerInfo through layerpipe lists diff IDs with the uncompressed sizes', async () => {
    await withProxy({ program: 'layerpipe' }, async (proxy) => {
      const id = await proxy.openImage(`docker-archive:${a.dockerMulti}:@0`);
      const infos = await proxy.getLayerInfo(id);
      const { bytes } = await proxy.getManifest(id);
      const manifest = JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] };
      assert.deepEqual(infos.map((l) => [l.digest, l.size, l.media_type]), manifest.layers.map((l) => [l.digest, l.size, DOCKER_LAYER]));
    });
  });

  it('OpenImageOptional answers "no image" for a ref, tag or index the archive does not hold', async () => {
    await withProxy({ program: 'layerpipe' }, async (proxy) => {
      assert.equal(await proxy.openImageOptional(`oci-archive:${a.ociMulti}:v3`), null);
      assert.equal(await proxy.openImageOptional(`oci-archive:${a.ociMultiGz}:v3`), null);
      assert.equal(await proxy.openImageOptional(`docker-archive:${a.dockerMulti}:nope:v1`), null);
      assert.equal(await proxy.openImageOptional(`docker-archive:${a.dockerMulti}:@2`), null);
      assert.ok((await proxy.openImageOptional(`docker-archive:${a.dockerMulti}:@1`)) !== null);
      // Not "no such image": an archive holding several with none chosen, and a missing file.
      await proxyErrorOf(proxy.openImageOptional(`oci-archive:${a.ociMulti}`));
      await proxyErrorOf(proxy.openImageOptional(`docker-archive:${a.dockerMulti}`));
      await proxyErrorOf(proxy.openImageOptional(`oci-archive:${a.dir}/missing.tar`));
    });
  });

  it('errors for missing images carry skopeo\'s wording', async () => {
    const missingRef = await withProxy({ program: 'skopeo' }, (p) => proxyErrorOf(p.openImage(`oci-archive:${a.ociMulti}:v3`)));
    const ours = await rejectionOf(openInProcess(`oci-archive:${a.ociMulti}:v3`));
    assert.ok(ours instanceof ImageNotFoundError);
    assert.equal(ours.message, missingRef.message);
    // skopeo opens docker-archive images lazily: its error comes with GetManifest, ours at once.
    for (const suffix of [':nope:v1', ':@2']) {
      const theirs = await withProxy({ program: 'skopeo' }, async (p) => proxyErrorOf(p.getManifest(await p.openImage(`docker-archive:${a.dockerMulti}${suffix}`))));
      const mine = await rejectionOf(openInProcess(`docker-archive:${a.dockerMulti}${suffix}`));
      assert.ok(mine instanceof ImageNotFoundError, suffix);
      assert.equal(mine.message, theirs.message);
    }
    for (const suffix of [':UPPER', `:busybox@sha256:${'a'.repeat(64)}`, ':@-1']) {
      const theirs = await withProxy({ program: 'skopeo' }, (p) => proxyErrorOf(p.openImage(`docker-archive:${a.dockerMulti}${suffix}`)));
      const mine = await rejectionOf(openInProcess(`docker-archive:${a.dockerMulti}${suffix}`));
      assert.ok(mine instanceof InvalidArgumentError, suffix);
      assert.equal(mine.message, theirs.message, suffix);
    }
  });

  it('layerpipe inspect reads both transports and agrees with skopeo inspect', () => {
    for (const ref of [`oci-archive:${a.ociMulti}:v2`, `docker-archive:${a.dockerMulti}:@0`, `docker-archive:${a.dockerMultiGz}:@1`]) {
      const ours = JSON.parse(execFileSync(LAYERPIPE, ['inspect', ref], { encoding: 'utf8' })) as { Digest: string; Architecture: string; Layers: string[] };
      const theirs = JSON.parse(skopeo(['inspect', ref.replace(a.dockerMultiGz, a.dockerMulti)])) as { Digest: string; Architecture: string; Layers: string[] };
      assert.equal(ours.Digest, theirs.Digest, ref);
      assert.equal(ours.Architecture, theirs.Architecture, ref);
      assert.deepEqual(ours.Layers, theirs.Layers, ref);
    }
  });
});
