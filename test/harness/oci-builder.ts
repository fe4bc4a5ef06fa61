/**
 * Builds test images from scratch: OCI layouts (single, multi-image, multi-arch index) and
 * Docker schema 2 images in skopeo's dir: format. Layers are real gzip'd tars.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A ustar header for a regular file of `size` bytes. */
export function ustarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/** A minimal ustar archive of regular files. */
export function tarOf(files: Record<string, Buffer | string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
    blocks.push(ustarHeader(name, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export interface BuiltLayer {
  readonly compressed: Buffer;
  readonly digest: string;
  readonly diffId: string;
  readonly files: Record<string, Buffer | string>;
}

export function makeLayer(files: Record<string, Buffer | string>): BuiltLayer {
  const tar = tarOf(files);
  const compressed = gzipSync(tar, { level: 1 });
  return { compressed, digest: sha256(compressed), diffId: sha256(tar), files };
}

/** A layer of `size` incompressible bytes in one file. */
export function randomLayer(size: number, name = 'random.bin'): BuiltLayer {
  return makeLayer({ [name]: randomBytes(size) });
}

export interface ImageSpec {
  readonly layers: readonly BuiltLayer[];
  readonly os?: string;
  readonly architecture?: string;
  readonly variant?: string;
  /** Extra config members (Docker-only fields to check they are dropped, etc.). */
  readonly extraConfig?: Record<string, unknown>;
  readonly runtimeConfig?: Record<string, unknown>;
}

export function configFor(spec: ImageSpec): Buffer {
  const config: Record<string, unknown> = {
    created: '2024-05-01T10:20:30.123456000Z',
    architecture: spec.architecture ?? 'amd64',
    os: spec.os ?? 'linux',
    config: spec.runtimeConfig ?? { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], Labels: { 'b.label': 'x<y', 'a.label': 'z' } },
    rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
    history: spec.layers.map((_, i) => ({ created: '2024-05-01T10:20:30Z', created_by: `step ${i}` })),
    ...spec.extraConfig,
  };
  if (spec.variant !== undefined) config.variant = spec.variant;
  return Buffer.from(JSON.stringify(config));
}

function writeBlob(layoutDir: string, data: Buffer): string {
  const digest = sha256(data);
  const dir = path.join(layoutDir, 'blobs', 'sha256');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, digest.slice(7)), data);
  return digest;
}

export interface WrittenManifest {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly config: Buffer;
  readonly mediaType: string;
}

/** Writes config, layers and an OCI (or Docker schema 2) manifest as blobs of a layout. */
export function writeImageBlobs(layoutDir: string, spec: ImageSpec, docker = false): WrittenManifest {
  const config = configFor(spec);
  writeBlob(layoutDir, config);
  for (const l of spec.layers) writeBlob(layoutDir, l.compressed);
  const manifest = {
    schemaVersion: 2,
    mediaType: docker ? MT.dockerManifest : MT.ociManifest,
    config: { mediaType: docker ? MT.dockerConfig : MT.ociConfig, digest: sha256(config), size: config.length },
    layers: spec.layers.map((l) => ({ mediaType: docker ? MT.dockerLayerGzip : MT.ociLayerGzip, digest: l.digest, size: l.compressed.length })),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = writeBlob(layoutDir, bytes);
  return { digest, bytes, config, mediaType: manifest.mediaType };
}

export interface IndexEntry {
  readonly manifest: WrittenManifest;
  readonly refName?: string;
  readonly platform?: { os: string; architecture: string; variant?: string };
}

/** Writes index.json (and oci-layout) listing the entries. */
export function writeLayoutIndex(layoutDir: string, entries: readonly IndexEntry[]): void {
  mkdirSync(layoutDir, { recursive: true });
  writeFileSync(path.join(layoutDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: entries.map((e) => ({
      mediaType: e.manifest.mediaType,
      digest: e.manifest.digest,
      size: e.manifest.bytes.length,
      ...(e.refName !== undefined ? { annotations: { 'org.opencontainers.image.ref.name': e.refName } } : {}),
      ...(e.platform !== undefined ? { platform: e.platform } : {}),
    })),
  };
  writeFileSync(path.join(layoutDir, 'index.json'), JSON.stringify(index));
}

/** Writes a nested image index blob (for multi-arch) and returns it as a manifest-like entry. */
export function writeIndexBlob(layoutDir: string, entries: readonly IndexEntry[], docker = false): WrittenManifest {
  const index = {
    schemaVersion: 2,
    mediaType: docker ? MT.dockerList : MT.ociIndex,
    manifests: entries.map((e) => ({
      mediaType: e.manifest.mediaType,
      digest: e.manifest.digest,
      size: e.manifest.bytes.length,
      ...(e.platform !== undefined ? { platform: e.platform } : {}),
    })),
  };
  const bytes = Buffer.from(JSON.stringify(index));
  return { digest: writeBlob(layoutDir, bytes), bytes, config: Buffer.alloc(0), mediaType: index.mediaType };
}

/** A single-image OCI layout with the given ref name. */
export function writeOciImage(layoutDir: string, spec: ImageSpec, refName = 'latest'): WrittenManifest {
  const m = writeImageBlobs(layoutDir, spec);
  writeLayoutIndex(layoutDir, [{ manifest: m, refName }]);
  return m;
}

/** A Docker schema 2 image in skopeo's dir: format. */
export function writeDirImage(dir: string, spec: ImageSpec): WrittenManifest {
  mkdirSync(dir, { recursive: true });
  const config = configFor(spec);
  writeFileSync(path.join(dir, sha256(config).slice(7)), config);
  for (const l of spec.layers) writeFileSync(path.join(dir, l.digest.slice(7)), l.compressed);
  const manifest = {
    schemaVersion: 2,
    mediaType: MT.dockerManifest,
    config: { mediaType: MT.dockerConfig, digest: sha256(config), size: config.length },
    layers: spec.layers.map((l) => ({ mediaType: MT.dockerLayerGzip, digest: l.digest, size: l.compressed.length })),
  };
  const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
  writeFileSync(path.join(dir, 'manifest.json'), bytes);
  writeFileSync(path.join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  return { digest: sha256(bytes), bytes, config, mediaType: MT.dockerManifest };
}
