/**
 * Local images for the protocol 1.0 method tests, one of each kind: an OCI layout holding two
 * tagged images, a Docker schema 2 image in dir:, an oci-archive of the layout, a
 * docker-archive written by skopeo, a docker-archive with a gzip-compressed layer tar (built by
 * hand, as some tools write them), a multi-arch OCI index and a multi-arch Docker manifest list.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { dockerSaveEntries, writeArchive } from './archive-handmade';
import { skopeo, tempDir } from './archive-fixtures';
import {
  makeLayer, randomLayer, sha256, tarOf, writeDirImage, writeImageBlobs, writeIndexBlob, writeLayoutIndex, type BuiltLayer, type WrittenManifest,
} from './oci-builder';

export interface PlatformInstance {
  readonly platform: { os: string; architecture: string; variant?: string };
  readonly manifest: WrittenManifest;
}

export interface LocalImages {
  readonly layers: readonly BuiltLayer[];
  /** oci:LAYOUT:v1 (and :v2, another image) */
  readonly layout: string;
  readonly v1: WrittenManifest;
  readonly dir: string;
  readonly dirManifest: WrittenManifest;
  readonly ociArchive: string;
  readonly dockerArchive: string;
  /** docker-archive whose one layer tar is stored gzip-compressed; `gzTar` is that tar uncompressed. */
  readonly dockerArchiveGz: string;
  readonly gzTar: Buffer;
  /** oci:MULTI:multi, an OCI index of three platforms. */
  readonly multi: string;
  readonly multiList: WrittenManifest;
  readonly multiInstances: readonly PlatformInstance[];
  /** oci:DOCKERLIST, a layout whose only entry is a Docker manifest list of Docker schema 2 images. */
  readonly dockerList: string;
  readonly dockerListManifest: WrittenManifest;
  readonly dockerListInstances: readonly PlatformInstance[];
}

const PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
];

export async function buildLocalImages(): Promise<LocalImages> {
  const root = tempDir('methods-1');
  const layers = [makeLayer({ 'etc/motd': 'hello\n' }), randomLayer(300 * 1024)];
  const layout = path.join(root, 'layout');
  const v1 = writeImageBlobs(layout, { layers });
  const v2 = writeImageBlobs(layout, { layers: [makeLayer({ 'v2.txt': 'two\n' })] });
  writeLayoutIndex(layout, [{ manifest: v1, refName: 'v1' }, { manifest: v2, refName: 'v2' }]);

  const dir = path.join(root, 'dir');
  const dirManifest = writeDirImage(dir, { layers });

  const ociArchive = path.join(root, 'layout.tar');
  execFileSync('tar', ['-C', layout, '-cf', ociArchive, '.']);
  const dockerArchive = path.join(root, 'docker.tar');
  skopeo(['copy', '-q', `oci:${layout}:v1`, `docker-archive:${dockerArchive}:example.com/team/app:v1`]);

  const gzTar = tarOf({ 'gz/file.bin': Buffer.alloc(200_000, 7), 'gz/b.txt': 'b\n' });
  const handmade = dockerSaveEntries({ layerTars: [gzipSync(gzTar)], diffIds: [sha256(gzTar)] });
  const dockerArchiveGz = await writeArchive(root, 'docker-gz.tar', handmade.entries, handmade.items);

  const multi = path.join(root, 'multi');
  const multiInstances = PLATFORMS.map((platform, i) => ({
    platform,
    manifest: writeImageBlobs(multi, { layers: [makeLayer({ [`arch-${i}.txt`]: `${platform.architecture}\n` })], ...platform }),
  }));
  const multiList = writeIndexBlob(multi, multiInstances);
  writeLayoutIndex(multi, [{ manifest: multiList, refName: 'multi' }]);

  const dockerList = path.join(root, 'docker-list');
  const dockerListInstances = PLATFORMS.slice(0, 2).map((platform, i) => ({
    platform,
    manifest: writeImageBlobs(dockerList, { layers: [makeLayer({ [`d-${i}.txt`]: `${i}\n` })], ...platform }, true),
  }));
  const dockerListManifest = writeIndexBlob(dockerList, dockerListInstances, true);
  writeLayoutIndex(dockerList, [{ manifest: dockerListManifest }]);

  return {
    layers, layout, v1, dir, dirManifest, ociArchive, dockerArchive, dockerArchiveGz, gzTar, multi, multiList, multiInstances,
    dockerList, dockerListManifest, dockerListInstances,
  };
}
