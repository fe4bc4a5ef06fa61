/**
 * Sigstore attachments (containers-registries.d(5) use-sigstore-attachments): the signatures
 * cosign stores next to an image, as the layers of an OCI manifest tagged "ALG-HEX.sig" in the
 * same repository. Each layer is one payload; its annotations carry the signature, and for
 * Fulcio the certificate, chain and Rekor SET. Everything goes through the image's own
 * registry client (its credentials, only to that registry), and every byte read is bounded:
 * the manifest by the manifest limit, each layer by MAX_SIGNATURE_SIZE before it is fetched,
 * the layer count by MAX_SIGNATURES, their sum by MAX_SIGNATURES_TOTAL_SIZE.
 */
import { ImageNotFoundError, LayerpipeError, UnsafeContentError, errorMessage } from '../../../protocol/errors';
import type { Logger } from '../../log';
import { parseDigest, verifyBytes } from '../../image/digest';
import { MediaTypes, parseImageManifest } from '../../image/manifest';
import {
  MAX_SIGNATURE_SIZE, MAX_SIGNATURES, MAX_SIGNATURES_TOTAL_SIZE, tooLargeSignature, type ImageSignature,
} from '../../image/signatures';
import type { Descriptor } from '../../image/types';
import type { RegistryClient } from './client';

/** The tag cosign stores the signatures of `manifestDigest` under: "sha256-HEX.sig". */
export function sigstoreAttachmentTag(manifestDigest: string): string {
  const d = parseDigest(manifestDigest);
  return `${d.algorithm}-${d.hex}.sig`;
}

/** A layer's annotations, which must all be strings (as Go's map[string]string decodes them). */
function annotationsOf(layer: Descriptor, where: string): Map<string, string> {
  const out = new Map<string, string>();
  const raw: unknown = layer.annotations ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UnsafeContentError(`${where}: annotations are not an object`);
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new UnsafeContentError(`${where}: annotation ${JSON.stringify(k)} is not a string`);
    out.set(k, v);
  }
  return out;
}

/**
 * Reads one layer, never more than MAX_SIGNATURE_SIZE bytes nor more than its descriptor
 * says, and refuses a digest or size other than the descriptor's.
 */
async function readLayer(client: RegistryClient, repository: string, layer: Descriptor, where: string, signal: AbortSignal): Promise<Buffer> {
  const { stream } = await client.getBlob(repository, layer.digest, signal);
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      got += chunk.length;
      if (got > MAX_SIGNATURE_SIZE) throw tooLargeSignature(where);
      if (layer.size >= 0 && got > layer.size) throw new UnsafeContentError(`${where}: more than the ${layer.size} bytes its descriptor says`);
      chunks.push(chunk);
    }
  } finally {
    stream.destroy();
  }
  const bytes = Buffer.concat(chunks, got);
  if (layer.size >= 0 && bytes.length !== layer.size) throw new UnsafeContentError(`${where}: ${bytes.length} bytes, its descriptor says ${layer.size}`);
  verifyBytes(bytes, layer.digest, where);
  return bytes;
}

/**
 * The sigstore attachments of manifest `manifestDigest` in `repository`: none when the
 * attachment tag does not exist. Layers of any media type are returned (the policy counts
 * the ones that are not signatures); a manifest that is not an OCI image manifest, too many
 * layers, or a layer too large is an error naming the attachment.
 */
export async function readSigstoreAttachments(
  client: RegistryClient, repository: string, manifestDigest: string, log: Pick<Logger, 'debug'>, signal: AbortSignal,
): Promise<ImageSignature[]> {
  const tag = sigstoreAttachmentTag(manifestDigest);
  const name = `${client.endpoint.registry}/${repository}:${tag}`;
  log.debug(`looking for sigstore attachments in ${name}`);
  let manifest;
  try {
    manifest = await client.getManifest(repository, tag, signal);
  } catch (err) {
    if (err instanceof ImageNotFoundError) {
      log.debug(`no sigstore attachments: ${errorMessage(err)}`);
      return [];
    }
    throw err;
  }
  if (manifest.mediaType !== MediaTypes.ociManifest) {
    throw new UnsafeContentError(`unexpected MIME type for sigstore attachment manifest ${name}: ${JSON.stringify(manifest.mediaType)}`);
  }
  let layers: readonly Descriptor[];
  try {
    layers = parseImageManifest(manifest.bytes, manifest.mediaType).layers;
  } catch (err) {
    throw new UnsafeContentError(`parsing manifest ${name}: ${errorMessage(err)}`, { cause: err });
  }
  if (layers.length > MAX_SIGNATURES) throw new UnsafeContentError(`sigstore attachment manifest ${name}: ${layers.length} layers, more than ${MAX_SIGNATURES} signatures`);
  const out: ImageSignature[] = [];
  let total = 0;
  for (const [i, layer] of layers.entries()) {
    const where = `sigstore attachment ${i + 1}/${layers.length} (${layer.digest}) of ${name}`;
    if (layer.size > MAX_SIGNATURE_SIZE) throw tooLargeSignature(where);
    const annotations = annotationsOf(layer, where);
    let payload: Buffer;
    try {
      payload = await readLayer(client, repository, layer, where, signal);
    } catch (err) {
      if (err instanceof LayerpipeError) throw err;
      throw new LayerpipeError(`reading ${where}: ${errorMessage(err)}`, { cause: err });
    }
    total += payload.length;
    for (const [k, v] of annotations) total += k.length + v.length;
    if (total > MAX_SIGNATURES_TOTAL_SIZE) throw new UnsafeContentError(`${name}: signatures larger than ${MAX_SIGNATURES_TOTAL_SIZE} bytes together`);
    out.push({ format: 'sigstore-json', mimeType: layer.mediaType, payload, annotations });
  }
  return out;
}
