/**
 * Choosing a list's instance (server/image/platform.ts). The preference order is containers/
 * image's WantedPlatforms: the wanted variant and the ones it can run (arm: v8 > v7 > v6 > v5),
 * then no variant; with no variant wanted, no variant first and then every known one. skopeo
 * itself is asked which instance of a real OCI layout it picks under the same overrides.
 */
import { strict as assert } from 'node:assert';
import { before, describe, it } from 'node:test';
import { PlatformNotFoundError } from '../../protocol/errors';
import { MediaTypes, type ManifestList } from '../../server/image/manifest';
import { chooseInstance, wantedPlatforms, type WantedPlatform } from '../../server/image/platform';
import type { Descriptor, Platform } from '../../server/image/types';
import { skopeo, tempDir } from '../harness/archive-fixtures';
import { makeLayer, writeImageBlobs, writeIndexBlob, writeLayoutIndex, type IndexEntry } from '../harness/oci-builder';

const choice = (architectureChoice: string, variantChoice = '', osChoice = 'linux') => ({ osChoice, architectureChoice, variantChoice });
const variantsOf = (w: WantedPlatform[]): string[] => w.map((p) => p.variant);

describe('wantedPlatforms', () => {
  const orders: [string, string, string[]][] = [
    ['arm', 'v7', ['v7', 'v6', 'v5', '']],
    ['arm', 'v8', ['v8', 'v7', 'v6', 'v5', '']],
    ['arm', 'v5', ['v5', '']],
    ['arm', '', ['', 'v8', 'v7', 'v6', 'v5']],
    ['arm64', '', ['', 'v8']],
    ['arm64', 'v8', ['v8', '']],
    ['arm', 'v9', ['v9', '']],
    ['amd64', 'v3', ['v3', '']],
    ['amd64', '', ['']],
  ];
  for (const [arch, variant, want] of orders) {
    it(`${arch} with variant ${JSON.stringify(variant)} tries ${JSON.stringify(want)}`, () => {
      const wanted = wantedPlatforms(choice(arch, variant, 'freebsd'));
      assert.deepEqual(variantsOf(wanted), want);
      assert.ok(wanted.every((w) => w.architecture === arch && w.os === 'freebsd'));
    });
  }

  it('uses this machine\'s OS and architecture, in Go\'s names, when none is chosen', () => {
    const goArch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm', s390x: 's390x', ppc64: 'ppc64le' };
    const wanted = wantedPlatforms(choice('', '', ''));
    assert.equal(wanted[0]!.os, process.platform === 'win32' ? 'windows' : process.platform);
    if (goArch[process.arch] !== undefined) assert.equal(wanted[0]!.architecture, goArch[process.arch]);
  });

  it('a chosen variant alone narrows this machine\'s architecture', () => {
    const wanted = wantedPlatforms(choice('', 'v9', ''));
    assert.equal(wanted[0]!.variant, 'v9');
    assert.equal(wanted.at(-1)!.variant, '');
  });
});

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
function list(mediaType: string, platforms: (Platform | undefined)[]): ManifestList {
  return {
    mediaType,
    manifests: platforms.map((platform, i): Descriptor => ({ mediaType: MediaTypes.ociManifest, digest: digest(String(i)), size: 1, ...(platform === undefined ? {} : { platform }) })),
  };
}

describe('chooseInstance', () => {
  const arm = (variant?: string): Platform => ({ os: 'linux', architecture: 'arm', ...(variant === undefined ? {} : { variant }) });

  it('takes the first entry matching the most preferred platform, not the first matching any', () => {
    const l = list(MediaTypes.dockerList, [arm('v5'), arm(), arm('v7'), arm('v7')]);
    assert.equal(chooseInstance(l, wantedPlatforms(choice('arm', 'v7'))), digest('2'));
    assert.equal(chooseInstance(l, wantedPlatforms(choice('arm', 'v6'))), digest('0'));
    assert.equal(chooseInstance(l, wantedPlatforms(choice('arm'))), digest('1'));
  });

  it('matches os, architecture and variant exactly', () => {
    const l = list(MediaTypes.dockerList, [{ os: 'windows', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm64', variant: 'v7' }, arm('v7')]);
    assert.equal(chooseInstance(l, wantedPlatforms(choice('arm', 'v7'))), digest('2'));
  });

  it('falls back to an OCI index entry without a platform, but not in a Docker list', () => {
    const platforms = [{ os: 'linux', architecture: 'amd64' }, undefined];
    assert.equal(chooseInstance(list(MediaTypes.ociIndex, platforms), wantedPlatforms(choice('s390x'))), digest('1'));
    assert.throws(() => chooseInstance(list(MediaTypes.dockerList, platforms), wantedPlatforms(choice('s390x'))), PlatformNotFoundError);
  });

  it('prefers a matching platform over an entry without one', () => {
    const l = list(MediaTypes.ociIndex, [undefined, { os: 'linux', architecture: 's390x' }]);
    assert.equal(chooseInstance(l, wantedPlatforms(choice('s390x'))), digest('1'));
  });

  it('reports no match as PlatformNotFoundError naming the most preferred platform and the list kind', () => {
    const l = list(MediaTypes.dockerList, [arm('v7')]);
    assert.throws(() => chooseInstance(l, wantedPlatforms(choice('arm', 'v5'))), (err: Error) =>
      err instanceof PlatformNotFoundError && err.message === 'no image found in manifest list for architecture arm, variant "v5", OS linux');
    assert.throws(() => chooseInstance(list(MediaTypes.ociIndex, []), wantedPlatforms(choice('riscv64'))), (err: Error) =>
      err instanceof PlatformNotFoundError && err.message === 'no image found in image index for architecture riscv64, variant "", OS linux');
  });
});

describe('chooseInstance compared with skopeo', () => {
  let layout: string;
  let index: ManifestList;
  /** Each instance has one layer of its own: skopeo inspect's Layers tells which one it chose. */
  const layerOf = new Map<string, string>();
  const platforms: Platform[] = [
    { os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm', variant: 'v5' },
    { os: 'linux', architecture: 'arm' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'windows', architecture: 'amd64' },
  ];

  before(() => {
    layout = tempDir('platform');
    const entries: IndexEntry[] = platforms.map((p) => {
      const layer = makeLayer({ platform: JSON.stringify(p) });
      const manifest = writeImageBlobs(layout, { layers: [layer], os: p.os, architecture: p.architecture, ...(p.variant === undefined ? {} : { variant: p.variant }) });
      layerOf.set(manifest.digest, layer.digest);
      return { manifest, platform: p };
    });
    const written = writeIndexBlob(layout, entries);
    writeLayoutIndex(layout, [{ manifest: written, refName: 'multi' }]);
    index = { mediaType: MediaTypes.ociIndex, manifests: entries.map((e, i) => ({ mediaType: MediaTypes.ociManifest, digest: e.manifest.digest, size: 1, platform: platforms[i]! })) };
  });

  const overrides: [string, string, string][] = [
    ['', '', ''], ['arm', '', ''], ['arm', 'v8', ''], ['arm', 'v7', ''], ['arm', 'v6', ''], ['arm', 'v5', ''],
    ['arm64', '', ''], ['amd64', '', 'windows'], ['s390x', '', ''], ['amd64', '', 'darwin'],
  ];
  for (const [arch, variant, os] of overrides) {
    it(`arch ${JSON.stringify(arch)} variant ${JSON.stringify(variant)} os ${JSON.stringify(os)}`, () => {
      const flags = [
        ...(arch === '' ? [] : ['--override-arch', arch]), ...(variant === '' ? [] : ['--override-variant', variant]), ...(os === '' ? [] : ['--override-os', os]),
      ];
      let theirs: string;
      try {
        theirs = (JSON.parse(skopeo([...flags, 'inspect', `oci:${layout}:multi`])) as { Layers: string[] }).Layers[0]!;
      } catch (err) {
        // logrus quotes the message: \" stands for ".
        const message = ((err as { stderr?: string }).stderr ?? String(err)).replaceAll('\\"', '"');
        assert.match(message, /no image found in image index/);
        assert.throws(() => chooseInstance(index, wantedPlatforms({ osChoice: os, architectureChoice: arch, variantChoice: variant })), (e: Error) =>
          e instanceof PlatformNotFoundError && message.includes(e.message));
        return;
      }
      const ours = chooseInstance(index, wantedPlatforms({ osChoice: os, architectureChoice: arch, variantChoice: variant }));
      assert.equal(layerOf.get(ours), theirs);
    });
  }
});
