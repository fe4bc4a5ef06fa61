/**
 * Converting a Docker schema 2 manifest to OCI, as skopeo does before handing it out: media
 * types mapped, and the config descriptor naming the re-serialised OCI config bytes.
 */
import { UnsupportedError } from '../../protocol/errors';
import { goJsonString } from './config';
import { sha256Digest } from './digest';
import { MediaTypes, type ImageManifest } from './manifest';
import type { Descriptor } from './types';

const DOCKER_TO_OCI_LAYER: Readonly<Record<string, string>> = {
  [MediaTypes.dockerForeignLayer]: MediaTypes.ociLayerNonDistributable,
  [MediaTypes.dockerForeignLayerGzip]: MediaTypes.ociLayerNonDistributableGzip,
  [MediaTypes.dockerLayer]: MediaTypes.ociLayer,
  [MediaTypes.dockerLayerGzip]: MediaTypes.ociLayerGzip,
};

/** Serialises a descriptor with the members, order and omissions of the Go struct. */
function encodeDescriptor(d: Descriptor): string {
  const parts: string[] = [];
  if (d.mediaType !== '') parts.push(`"mediaType":${goJsonString(d.mediaType)}`);
  parts.push(`"digest":${goJsonString(d.digest)}`, `"size":${d.size}`);
  if (d.urls !== undefined && d.urls.length > 0) parts.push(`"urls":[${d.urls.map(goJsonString).join(',')}]`);
  return `{${parts.join(',')}}`;
}

/**
 * The OCI manifest bytes for a Docker schema 2 manifest whose config, re-serialised for OCI,
 * is `ociConfig`. Annotations do not survive (the Docker format has none).
 */
export function dockerToOciManifest(manifest: ImageManifest, ociConfig: Buffer): Buffer {
  const config: Descriptor = { mediaType: MediaTypes.ociConfig, digest: sha256Digest(ociConfig), size: ociConfig.length };
  const layers = manifest.layers.map((layer): Descriptor => {
    const mediaType = DOCKER_TO_OCI_LAYER[layer.mediaType];
    if (mediaType === undefined) {
      throw new UnsupportedError(`Unknown media type during manifest conversion: ${JSON.stringify(layer.mediaType)}`);
    }
    const out: Descriptor = { mediaType, digest: layer.digest, size: layer.size };
    if (layer.urls !== undefined) out.urls = layer.urls;
    return out;
  });
  const body =
    `{"schemaVersion":2,"mediaType":${goJsonString(MediaTypes.ociManifest)},` +
    `"config":${encodeDescriptor(config)},"layers":[${layers.map(encodeDescriptor).join(',')}]}`;
  return Buffer.from(body, 'utf8');
}
