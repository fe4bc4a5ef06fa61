/**
 * What a copy writes, decided before any blob moves: the manifests (as stored, or converted to
 * OCI when the destination holds OCI only, as skopeo converts by default) and every blob they
 * name, each once. Blobs are copied byte for byte: nothing is recompressed, so layer digests
 * never change.
 */
import { UnsupportedError } from '../../protocol/errors';
import { sha256Digest } from '../image/digest';
import type { OpenedImage } from '../image/image';
import type { ImageInstance } from '../image/instance';
import { isListType, MediaTypes, parseImageManifest, parseManifestList } from '../image/manifest';
import type { Descriptor } from '../image/types';
import type { BlobSource } from './blob-file';
import { ociIndexBytes } from './oci-json';

export interface PlannedManifest {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly mediaType: string;
}

export interface PlannedBlob extends BlobSource {
  readonly role: 'config' | 'layer';
}

export interface CopyPlan {
  /** Every blob to copy, each digest once, configs first (as skopeo lists them last, they are small). */
  readonly blobs: readonly PlannedBlob[];
  /** Instances of a copied list (--all), written before the list; empty for one image. */
  readonly instances: readonly PlannedManifest[];
  /** What the destination's index.json or manifest.json names. */
  readonly top: PlannedManifest;
}

export interface PlanOptions {
  /** The destination stores OCI manifests and indexes only (oci:, oci-archive:). */
  readonly ociOnly: boolean;
  /** --all: copy every instance of a list, and the list. */
  readonly all: boolean;
  /** --preserve-digests: refuse to convert anything that would change a manifest digest. */
  readonly preserveDigests: boolean;
  readonly signal: AbortSignal;
}

function refuseConversion(what: string, to: string): never {
  throw new UnsupportedError(`${what} must be converted to type ${JSON.stringify(to)} to be written to the destination, but --preserve-digests does not allow it`);
}

async function planInstance(instance: ImageInstance, opts: PlanOptions): Promise<{ manifest: PlannedManifest; blobs: PlannedBlob[] }> {
  if (instance.mediaType !== MediaTypes.ociManifest && instance.mediaType !== MediaTypes.dockerManifest) {
    throw new UnsupportedError(`copying a manifest of type ${JSON.stringify(instance.mediaType)} is not supported`);
  }
  const convert = opts.ociOnly && instance.mediaType === MediaTypes.dockerManifest;
  if (convert && opts.preserveDigests) refuseConversion('Image manifest', MediaTypes.ociManifest);
  const bytes = convert ? await instance.ociManifest() : instance.bytes;
  const mediaType = convert ? MediaTypes.ociManifest : instance.mediaType;
  const parsed = parseImageManifest(bytes, mediaType);
  const blob = (d: Descriptor, role: PlannedBlob['role']): PlannedBlob => ({
    digest: d.digest,
    size: d.size,
    role,
    open: (range) => instance.openBlob({ digest: d.digest, size: d.size, signal: opts.signal, range }),
  });
  return {
    manifest: { digest: convert ? sha256Digest(bytes) : instance.digest, bytes, mediaType },
    blobs: [blob(parsed.config, 'config'), ...parsed.layers.map((l) => blob(l, 'layer'))],
  };
}

function addBlobs(into: Map<string, PlannedBlob>, blobs: readonly PlannedBlob[]): void {
  for (const b of blobs) if (!into.has(b.digest)) into.set(b.digest, b);
}

function ordered(blobs: Map<string, PlannedBlob>): PlannedBlob[] {
  const all = [...blobs.values()];
  return [...all.filter((b) => b.role === 'config'), ...all.filter((b) => b.role === 'layer')];
}

/**
 * The plan for an opened image. Without --all a list contributes only the instance the
 * platform flags chose, and that instance's manifest is what gets written (as skopeo does).
 */
export async function planCopy(image: OpenedImage, opts: PlanOptions): Promise<CopyPlan> {
  const blobs = new Map<string, PlannedBlob>();
  const listType = image.top.mediaType;
  if (!opts.all || !isListType(listType)) {
    const one = await planInstance(image.chosen, opts);
    addBlobs(blobs, one.blobs);
    return { blobs: ordered(blobs), instances: [], top: one.manifest };
  }
  const list = parseManifestList(image.top.bytes, listType);
  const instances: PlannedManifest[] = [];
  const entries: Descriptor[] = [];
  let changed = false;
  for (const entry of list.manifests) {
    const planned = await planInstance(await image.instanceByDigest(entry.digest, opts.signal), opts);
    addBlobs(blobs, planned.blobs);
    if (!instances.some((i) => i.digest === planned.manifest.digest)) instances.push(planned.manifest);
    if (planned.manifest.digest !== entry.digest) changed = true;
    entries.push({ ...entry, mediaType: planned.manifest.mediaType, digest: planned.manifest.digest, size: planned.manifest.bytes.length });
  }
  const convertList = opts.ociOnly && listType === MediaTypes.dockerList;
  if (convertList && opts.preserveDigests) refuseConversion('Manifest list', MediaTypes.ociIndex);
  if (!convertList && !changed) {
    return { blobs: ordered(blobs), instances, top: { digest: image.top.digest, bytes: image.top.bytes, mediaType: listType } };
  }
  const bytes = ociIndexBytes(entries);
  return { blobs: ordered(blobs), instances, top: { digest: sha256Digest(bytes), bytes, mediaType: MediaTypes.ociIndex } };
}
