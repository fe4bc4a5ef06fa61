/**
 * An image whose layers are given bytes of exact sizes, pushed raw (no tar, no gzip): for
 * blob-transfer tests and benchmarks that need awkward or large sizes without building layers.
 * The layers are declared uncompressed tars; nothing here reads them as such.
 */
import { randomBytes } from 'node:crypto';
import type { RunningRegistry } from './registry';
import { pushBlob, putManifest } from './registry-push';

export interface RawBlob {
  readonly digest: string;
  readonly size: number;
}

export interface RawBlobImage {
  /** docker://HOST/REPO:TAG on the registry itself. */
  readonly ref: string;
  readonly manifestDigest: string;
  readonly layers: readonly RawBlob[];
}

/** Random bytes, made in slices (randomBytes refuses more than 2 GiB at once and is slow past a few MiB per call). */
export function randomBlob(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let at = 0; at < size; at += 16 * 1024 * 1024) randomBytes(Math.min(16 * 1024 * 1024, size - at)).copy(out, at);
  return out;
}

/** Random blobs of these sizes, each made when it is asked for (so only one is in memory at a time). */
export function* randomBlobs(sizes: readonly number[]): Generator<Buffer> {
  for (const size of sizes) yield randomBlob(size);
}

/** Pushes each buffer as a layer blob, a minimal config and an OCI manifest tagged `repo:tag`. */
export async function pushRawBlobImage(registry: RunningRegistry, repo: string, tag: string, blobs: Iterable<Buffer>): Promise<RawBlobImage> {
  const layers: RawBlob[] = [];
  for (const blob of blobs) layers.push({ digest: await pushBlob(registry, repo, blob), size: blob.length });
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {},
  }));
  const configDigest = await pushBlob(registry, repo, config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
  }));
  const manifestDigest = await putManifest(registry, repo, tag, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return { ref: registry.ref(`${repo}:${tag}`), manifestDigest, layers };
}
