/**
 * Parsing manifests: media types, guessing a type from bytes, and typed views of OCI and
 * Docker schema 2 manifests and lists. Converting between them lives in convert.ts.
 */
import { UnsupportedError } from '../../protocol/errors';
import { isValidDigest } from './digest';
import type { Descriptor, Platform } from './types';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNonDistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNonDistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** Most manifest bytes layerpipe will read from any source: refuses hostile giants. */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
/** Most config bytes read into memory. */
export const MAX_CONFIG_SIZE = 4 * 1024 * 1024;

export function isListType(mediaType: string): boolean {
  return mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerList;
}

function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new UnsupportedError(`parsing ${what}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UnsupportedError(`parsing ${what}: not a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * The member Go's encoding/json would decode into a struct field named `name`: keys are
 * matched case-insensitively and the last matching key wins.
 */
function goField(obj: Record<string, unknown>, name: string): unknown {
  let value: unknown;
  const lower = name.toLowerCase();
  for (const [key, v] of Object.entries(obj)) if (key === name || key.toLowerCase() === lower) value = v;
  return value;
}

/** A JSON value as Go would decode it into a string field: undefined when it would not decode. */
function goString(value: unknown): string | undefined {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : undefined;
}

/**
 * The media type of manifest bytes whose source did not say (dir:, some registries), following
 * the same rules containers/image applies so both tools agree on what a manifest is. A member
 * of the wrong JSON type makes Go's decoding fail, and the guess is then '' as there.
 */
export function guessManifestType(bytes: Buffer): string {
  let m: Record<string, unknown>;
  try {
    m = parseJsonObject(bytes, 'manifest');
  } catch {
    return '';
  }
  const declared = goString(goField(m, 'mediaType'));
  const version = goField(m, 'schemaVersion') ?? 0;
  if (declared === undefined || typeof version !== 'number' || !Number.isInteger(version)) return '';
  if (
    declared === MediaTypes.dockerManifest || declared === MediaTypes.dockerList ||
    declared === MediaTypes.ociManifest || declared === MediaTypes.ociIndex
  ) {
    return declared;
  }
  if (version === 1) {
    const signatures = goField(m, 'signatures');
    return signatures !== undefined && signatures !== null ? MediaTypes.dockerSchema1Signed : MediaTypes.dockerSchema1;
  }
  if (version !== 2) return '';
  const config = goField(m, 'config') ?? {};
  if (typeof config !== 'object' || Array.isArray(config)) return '';
  const configType = goString(goField(config as Record<string, unknown>, 'mediaType'));
  if (configType === undefined) return '';
  if (configType === MediaTypes.ociConfig) return MediaTypes.ociManifest;
  if (configType === MediaTypes.dockerConfig) return MediaTypes.dockerManifest;
  const manifests = goField(m, 'manifests') ?? [];
  if (!Array.isArray(manifests) || manifests.some((d) => typeof d !== 'object' || Array.isArray(d))) return '';
  if (manifests.length > 0) {
    // containers/image answers with the config's type here (mixing up manifest and config types).
    return configType === '' ? MediaTypes.ociIndex : configType;
  }
  return MediaTypes.ociManifest;
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw new UnsupportedError(`${where}: descriptor is not an object`);
  const d = value as Record<string, unknown>;
  if (typeof d.digest !== 'string' || !isValidDigest(d.digest)) {
    throw new UnsupportedError(`${where}: invalid digest ${JSON.stringify(d.digest)}`);
  }
  const size = typeof d.size === 'number' && Number.isSafeInteger(d.size) ? d.size : -1;
  const out: Descriptor = { mediaType: typeof d.mediaType === 'string' ? d.mediaType : '', digest: d.digest, size };
  if (Array.isArray(d.urls)) out.urls = d.urls.filter((u): u is string => typeof u === 'string');
  if (typeof d.annotations === 'object' && d.annotations !== null) out.annotations = d.annotations as Record<string, string>;
  if (typeof d.platform === 'object' && d.platform !== null) out.platform = d.platform as Platform;
  return out;
}

/** An image manifest (OCI or Docker schema 2): config and layers. */
export interface ImageManifest {
  readonly mediaType: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  /** The parsed JSON object, for conversions that keep unknown members. */
  readonly raw: Record<string, unknown>;
}

/** A list of manifests (OCI index or Docker manifest list). */
export interface ManifestList {
  readonly mediaType: string;
  readonly manifests: readonly Descriptor[];
}

export function parseImageManifest(bytes: Buffer, mediaType: string): ImageManifest {
  const raw = parseJsonObject(bytes, 'manifest');
  if (!Array.isArray(raw.layers)) throw new UnsupportedError('parsing manifest: "layers" is not an array');
  const config = parseDescriptor(raw.config, 'manifest config');
  const layers = raw.layers.map((l, i) => parseDescriptor(l, `manifest layer ${i}`));
  return { mediaType, config, layers, raw };
}

export function parseManifestList(bytes: Buffer, mediaType: string): ManifestList {
  const raw = parseJsonObject(bytes, 'manifest list');
  if (!Array.isArray(raw.manifests)) throw new UnsupportedError('parsing manifest list: "manifests" is not an array');
  return { mediaType, manifests: raw.manifests.map((m, i) => parseDescriptor(m, `manifest list entry ${i}`)) };
}
