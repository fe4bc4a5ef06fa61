/**
 * One real image per local transport, built with test/harness/oci-builder.ts (and the
 * hand-made `docker save` entries), with what each must answer: its layers' digests, sizes and
 * bytes. A layer larger than a pipe's buffer makes every GetBlob a real streamed transfer.
 * Also the hostile files references point at: a FIFO, an empty file, a directory.
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { directoryEntries, dockerSaveEntries, writeArchive } from '../harness/archive-handmade';
import { packTar } from '../harness/archive-fixtures';
import { makeLayer, randomLayer, sha256, tarOf, writeDirImage, writeOciImage } from '../harness/oci-builder';

export interface ExpectedBlob {
  readonly digest: string;
  readonly size: number;
  readonly bytes: Buffer;
}

export interface FixtureImage {
  readonly transport: 'oci' | 'dir' | 'oci-archive' | 'docker-archive';
  /** A reference OpenImage must open. */
  readonly ref: string;
  /** The path part, for hostile variations on it. */
  readonly file: string;
  /** GetLayerInfo's answer, in order. */
  readonly layers: readonly ExpectedBlob[];
}

export interface Fixtures {
  readonly dir: string;
  readonly images: readonly FixtureImage[];
  /** The OCI layout: the image the liveness probe and the soak open. */
  readonly oci: FixtureImage;
  /** A FIFO nobody writes to: opening it blocks until a writer comes. */
  readonly fifo: string;
  readonly emptyFile: string;
  readonly plainDir: string;
  /** A 127.0.0.1 port that refuses connections (docker:// with no network). */
  readonly refusedPort: number;
  remove(): void;
}

/** Bigger than a pipe's default 64 KiB buffer, so the copy must wait for the reader. */
const STREAMED_LAYER_BYTES = 192 * 1024;

function blobOf(bytes: Buffer): ExpectedBlob {
  return { digest: sha256(bytes), size: bytes.length, bytes };
}

/** A port that was just free: listen on port 0, note it, close. Connections to it are refused. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

export async function buildFixtures(): Promise<Fixtures> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-stress-fixtures-'));
  const ociLayers = [makeLayer({ 'etc/motd': 'hello\n' }), randomLayer(STREAMED_LAYER_BYTES), makeLayer({ 'a/b/c': 'c'.repeat(5000) })];
  const ociDir = path.join(dir, 'oci');
  writeOciImage(ociDir, { layers: ociLayers }, 'latest');
  const oci: FixtureImage = {
    transport: 'oci', ref: `oci:${ociDir}:latest`, file: ociDir, layers: ociLayers.map((l) => blobOf(l.compressed)),
  };

  const dirLayers = [makeLayer({ 'dir.txt': 'dir transport\n' }), randomLayer(STREAMED_LAYER_BYTES, 'd.bin')];
  const dirDir = path.join(dir, 'dir');
  writeDirImage(dirDir, { layers: dirLayers });
  const dirImage: FixtureImage = { transport: 'dir', ref: `dir:${dirDir}`, file: dirDir, layers: dirLayers.map((l) => blobOf(l.compressed)) };

  const ociArchive = path.join(dir, 'image.oci.tar');
  writeFileSync(ociArchive, await packTar(directoryEntries(ociDir)));
  const ociArchiveImage: FixtureImage = { transport: 'oci-archive', ref: `oci-archive:${ociArchive}:latest`, file: ociArchive, layers: oci.layers };

  const layerTars = [tarOf({ 'x.txt': 'docker archive\n' }), tarOf({ 'big.bin': Buffer.alloc(STREAMED_LAYER_BYTES, 7) })];
  const save = dockerSaveEntries({ layerTars, repoTags: ['example.com/stress/app:v1'] });
  const dockerArchive = await writeArchive(dir, 'image.docker.tar', save.entries, save.items);
  const dockerImage: FixtureImage = {
    transport: 'docker-archive', ref: `docker-archive:${dockerArchive}:example.com/stress/app:v1`, file: dockerArchive, layers: layerTars.map(blobOf),
  };

  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const emptyFile = path.join(dir, 'empty');
  writeFileSync(emptyFile, '');
  const plainDir = path.join(dir, 'plain-dir');
  mkdirSync(plainDir);
  return {
    dir, images: [oci, dirImage, ociArchiveImage, dockerImage], oci, fifo, emptyFile, plainDir,
    refusedPort: await refusedPort(),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
