/**
 * A WebAssembly module as an OCI artifact in an OCI image layout (oci:DIR:REF): one layer
 * holding the module bytes as they are (no tar, no compression), and a config that is either
 * the OCI empty descriptor or a wasm config (application/vnd.wasm.config.v0+json).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../../protocol/errors';

export const WASM_MEDIA_TYPES = {
  /** The layer type of the CNCF wasm OCI artifact layout. */
  layer: 'application/wasm',
  /** The layer type of the older wasm-to-oci convention. */
  legacyLayer: 'application/vnd.wasm.content.layer.v1+wasm',
  config: 'application/vnd.wasm.config.v0+json',
} as const;

/** Layer media types the fetcher accepts as a WebAssembly module. */
export const WASM_LAYER_TYPES: readonly string[] = [WASM_MEDIA_TYPES.layer, WASM_MEDIA_TYPES.legacyLayer];

export const OCI_MEDIA_TYPES = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  empty: 'application/vnd.oci.empty.v1+json',
} as const;

const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** The OCI empty JSON blob; image-spec 1.1 fixes its digest and allows it inline as `data`. */
const EMPTY_JSON = Buffer.from('{}');

export const sha256Of = (data: Uint8Array): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  data?: string;
  annotations?: Record<string, string>;
}

export type ConfigStyle = 'empty' | 'wasm';

export interface WasmArtifactOptions {
  /** The index.json ref name (`REF` of oci:DIR:REF). Default "latest". */
  ref?: string;
  /** `empty`: the OCI empty descriptor plus `artifactType`; `wasm`: a wasm config blob. Default `empty`. */
  config?: ConfigStyle;
  /** The layer's media type; default application/wasm. Any string is written as given. */
  layerMediaType?: string;
  /** Annotations on the layer descriptor, e.g. org.opencontainers.image.title. */
  layerAnnotations?: Record<string, string>;
  /** `created` of the wasm config; fixed by default so the artifact's digests are reproducible. */
  created?: string;
}

export interface WrittenArtifact {
  readonly layoutDir: string;
  readonly ref: string;
  readonly manifestDigest: string;
  readonly manifestBytes: Buffer;
  readonly config: Descriptor;
  readonly layer: Descriptor;
}

function writeBlob(layoutDir: string, data: Buffer): string {
  const digest = sha256Of(data);
  const dir = path.join(layoutDir, 'blobs', 'sha256');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, digest.slice('sha256:'.length)), data);
  return digest;
}

/** The path of a blob inside a layout (for tests that damage one). */
export function blobFile(layoutDir: string, digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return path.join(layoutDir, 'blobs', algorithm!, hex!);
}

function configBlob(style: ConfigStyle, layerDigest: string, created: string): { mediaType: string; bytes: Buffer } {
  if (style === 'empty') return { mediaType: OCI_MEDIA_TYPES.empty, bytes: EMPTY_JSON };
  // architecture "wasm" with os "wasip1" is what the wasm artifact layout asks for a plain module;
  // layerDigests makes the config (and so the manifest) unique to this module.
  const config = { created, architecture: 'wasm', os: 'wasip1', layerDigests: [layerDigest] };
  return { mediaType: WASM_MEDIA_TYPES.config, bytes: Buffer.from(JSON.stringify(config)) };
}

/** Adds (or replaces) `ref` in the layout's index.json, keeping the other entries. */
function updateIndex(layoutDir: string, ref: string, manifest: Descriptor): void {
  const indexPath = path.join(layoutDir, 'index.json');
  let manifests: Descriptor[] = [];
  if (existsSync(indexPath)) {
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { manifests?: Descriptor[] };
    manifests = (index.manifests ?? []).filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== ref);
  }
  manifests.push({ ...manifest, annotations: { [REF_NAME_ANNOTATION]: ref } });
  writeFileSync(path.join(layoutDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(indexPath, JSON.stringify({ schemaVersion: 2, mediaType: OCI_MEDIA_TYPES.index, manifests }, null, 2));
}

/** Writes `wasm` as an artifact into the layout at `layoutDir` (created if missing) under `ref`. */
export function writeWasmArtifact(layoutDir: string, wasm: Buffer, options: WasmArtifactOptions = {}): WrittenArtifact {
  const ref = options.ref ?? 'latest';
  const style = options.config ?? 'empty';
  mkdirSync(layoutDir, { recursive: true });

  const layer: Descriptor = { mediaType: options.layerMediaType ?? WASM_MEDIA_TYPES.layer, digest: writeBlob(layoutDir, wasm), size: wasm.length };
  if (options.layerAnnotations !== undefined) layer.annotations = options.layerAnnotations;

  const cfg = configBlob(style, layer.digest, options.created ?? '2024-01-01T00:00:00Z');
  const config: Descriptor = { mediaType: cfg.mediaType, digest: writeBlob(layoutDir, cfg.bytes), size: cfg.bytes.length };
  if (style === 'empty') config.data = cfg.bytes.toString('base64');

  // image-spec 1.1: with the empty config, artifactType must say what the artifact is; with a
  // typed config, the config's media type already does, so artifactType is left out.
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MEDIA_TYPES.manifest,
    ...(style === 'empty' ? { artifactType: WASM_MEDIA_TYPES.layer } : {}),
    config,
    layers: [layer],
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = writeBlob(layoutDir, manifestBytes);
  updateIndex(layoutDir, ref, { mediaType: OCI_MEDIA_TYPES.manifest, digest: manifestDigest, size: manifestBytes.length });
  return { layoutDir, ref, manifestDigest, manifestBytes, config, layer };
}

/** Splits "oci:DIR[:REF]" (REF defaults to "latest"). */
export function parseOciLayoutRef(imageRef: string): { layoutDir: string; ref: string } {
  if (!imageRef.startsWith('oci:')) throw new InvalidArgumentError(`expected oci:DIR[:REF], got ${JSON.stringify(imageRef)}`);
  const rest = imageRef.slice('oci:'.length);
  const colon = rest.indexOf(':');
  const layoutDir = colon < 0 ? rest : rest.slice(0, colon);
  const ref = colon < 0 ? 'latest' : rest.slice(colon + 1);
  if (layoutDir === '' || ref === '') throw new InvalidArgumentError(`expected oci:DIR[:REF], got ${JSON.stringify(imageRef)}`);
  return { layoutDir, ref };
}
