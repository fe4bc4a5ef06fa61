/**
 * docker:// conformance with the oracle: layerpipe and skopeo 1.9.3 read the same images from
 * the same registry (OCI, Docker schema 2, an OCI index and a Docker manifest list) and must
 * agree on everything a client sees: GetManifest's digest and the OCI manifest, the config
 * bytes, and every layer's bytes. A missing tag fails OpenImage in both; layerpipe's
 * OpenImageOptional answers "no image" for it.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { makeLayer, randomLayer, type ImageSpec } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { pushImage, pushMultiArch, type PushedMultiArch, type PushedSingleImage } from '../harness/registry-images';
import { proxyErrorOf, snapshotImage, withProxy, type ImageSnapshot, type ProxyProgram } from '../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../harness/registry-tools';

const skip = registrySuiteSkip();
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

/** Go's names for this machine's architecture, which both proxies pick from a list by default. */
const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

function spec(extraConfig?: Record<string, unknown>): ImageSpec {
  return {
    layers: [randomLayer(200 * 1024), makeLayer({ 'usr/share/doc/readme': 'conformance\n', 'etc/motd': 'hello\n' })],
    runtimeConfig: { Env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'], Entrypoint: ['/bin/app'], Labels: { 'org.example.html': '<b>&amp;</b>', z: '1', a: '2' }, WorkingDir: '/srv' },
    ...(extraConfig !== undefined ? { extraConfig } : {}),
  };
}

async function snapshotBoth(ref: string, args: readonly string[] = []): Promise<Record<ProxyProgram, ImageSnapshot>> {
  const out: Partial<Record<ProxyProgram, ImageSnapshot>> = {};
  for (const program of ['layerpipe', 'skopeo'] as const) {
    out[program] = await withProxy({ program, args: ['--tls-verify=false', ...args] }, (proxy) => snapshotImage(proxy, ref));
  }
  return out as Record<ProxyProgram, ImageSnapshot>;
}

interface OciManifestShape {
  mediaType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: { mediaType: string; digest: string; size: number }[];
}

describe('docker:// conformance with skopeo 1.9.3', { skip }, () => {
  let registry: RunningRegistry;
  let oci: PushedSingleImage;
  let docker: PushedSingleImage;
  let ociIndex: PushedMultiArch;
  let dockerList: PushedMultiArch;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    oci = await pushImage(registry, 'conf/oci:v1', spec());
    // Docker-only config members (container_config, docker_version) must not survive GetFullConfig.
    docker = await pushImage(registry, 'conf/docker:v1', spec({ docker_version: '24.0.7', container_config: { Hostname: 'build' } }), { format: 'v2s2' });
    const platforms = [
      { platform: { os: 'linux', architecture: 'amd64' }, spec: spec() },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, spec: spec() },
    ];
    ociIndex = await pushMultiArch(registry, 'conf/multi:v1', platforms);
    dockerList = await pushMultiArch(registry, 'conf/list:v1', platforms, { format: 'v2s2' });
  });
  after(async () => registry?.stop());

  it('OCI image: identical snapshots; the manifest is served as stored', async () => {
    const both = await snapshotBoth(oci.ref);
    assert.deepEqual(both.layerpipe, both.skopeo);
    assert.equal(both.layerpipe.manifestDigest, oci.manifestDigest);
    assert.deepEqual(both.layerpipe.manifest, JSON.parse(oci.manifest.toString('utf8')));
  });

  it('OCI image by digest: the same as by tag', async () => {
    const byDigest = registry.ref(`conf/oci@${oci.manifestDigest}`);
    const both = await snapshotBoth(byDigest);
    assert.deepEqual(both.layerpipe, both.skopeo);
    assert.equal(both.layerpipe.manifestDigest, oci.manifestDigest);
  });

  it('Docker schema 2: converted to OCI identically; the config descriptor names GetFullConfig\'s bytes', async () => {
    const both = await snapshotBoth(docker.ref);
    assert.deepEqual(both.layerpipe, both.skopeo);
    const snap = both.layerpipe;
    assert.equal(snap.manifestDigest, docker.manifestDigest, 'digest of the stored (Docker) manifest');
    const manifest = snap.manifest as OciManifestShape;
    assert.equal(manifest.mediaType, OCI_MANIFEST);
    assert.equal(manifest.config.mediaType, OCI_CONFIG);
    assert.equal(manifest.config.digest, snap.fullConfigDigest);
    assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip'));
    const fullConfig = snap.fullConfig as Record<string, unknown>;
    assert.equal('docker_version' in fullConfig, false);
    assert.equal('container_config' in fullConfig, false);
  });

  for (const [name, pushed] of [['OCI index', () => ociIndex], ['Docker manifest list', () => dockerList]] as const) {
    it(`${name}: both pick this machine's instance, and arm64/v8 with --override-arch`, async () => {
      const list = pushed();
      const native = GO_ARCH[process.arch] ?? process.arch;
      const both = await snapshotBoth(list.ref);
      assert.deepEqual(both.layerpipe, both.skopeo);
      const expected = list.instances.find((i) => i.platform.architecture === native);
      if (expected !== undefined) assert.equal(both.layerpipe.manifestDigest, expected.digest, 'the instance digest, not the list digest');

      const arm = await snapshotBoth(list.ref, ['--override-arch', 'arm64', '--override-variant', 'v8']);
      assert.deepEqual(arm.layerpipe, arm.skopeo);
      assert.equal(arm.layerpipe.manifestDigest, list.instances[1].digest);
      assert.equal((arm.layerpipe.fullConfig as { architecture: string }).architecture, 'arm64');
    });
  }

  it('a platform the list lacks: refused by GetManifest at the latest; OpenImageOptional does not say "no image"', async () => {
    // skopeo 1.9.3 opens the list and refuses at GetManifest; choosing at OpenImage is allowed too.
    const refusal = async (open: () => Promise<number | null>, getManifest: (id: number) => Promise<unknown>): Promise<string> => {
      let id: number | null;
      try {
        id = await open();
      } catch (err) {
        return (err as Error).message;
      }
      assert.notEqual(id, null, 'a missing platform is not a missing image');
      return proxyErrorOf(getManifest(id!)).then((e) => e.message);
    };
    const args = ['--tls-verify=false', '--override-arch', 's390x'];
    for (const program of ['layerpipe', 'skopeo'] as const) {
      const message = await withProxy({ program, args }, (proxy) => refusal(() => proxy.openImage(ociIndex.ref), (id) => proxy.getManifest(id)));
      assert.match(message, /no image found|s390x/i, `${program}: ${message}`);
    }
    await withProxy({ args }, (proxy) => refusal(() => proxy.openImageOptional(ociIndex.ref), (id) => proxy.getManifest(id)));
  });

  it('GetLayerInfo lists the layers of the stored manifest (media types as stored)', async () => {
    await withProxy({ args: ['--tls-verify=false'] }, async (proxy) => {
      for (const image of [oci, docker]) {
        const id = await proxy.openImage(image.ref);
        const stored = JSON.parse(image.manifest.toString('utf8')) as OciManifestShape;
        assert.deepEqual(await proxy.getLayerInfo(id), stored.layers.map((l) => ({ digest: l.digest, size: l.size, media_type: l.mediaType })));
        await proxy.closeImage(id);
      }
    });
  });

  it('a missing tag or repository: OpenImage fails in both; OpenImageOptional answers "no image"', async () => {
    for (const missing of [registry.ref('conf/oci:no-such-tag'), registry.ref('conf/no-such-repo:v1')]) {
      for (const program of ['layerpipe', 'skopeo'] as const) {
        const err = await withProxy({ program, args: ['--tls-verify=false'] }, (proxy) => proxyErrorOf(proxy.openImage(missing)));
        assert.match(err.message, /manifest unknown|not found|name unknown/i, `${program}: ${err.message}`);
      }
      await withProxy({ args: ['--tls-verify=false'] }, async (proxy) => {
        assert.equal(await proxy.openImageOptional(missing), null);
        // The proxy keeps serving after the sentinel answer.
        const id = await proxy.openImageOptional(oci.ref);
        assert.ok(id !== null && id > 0);
      });
    }
  });
});
