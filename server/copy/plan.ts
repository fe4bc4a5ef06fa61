/**
 * What a copy writes, decided before any blob moves: the manifests (as stored, or converted to
 * OCI when the destination holds OCI only, as skopeo converts by default) and every blob they
 * name, each once. Blobs are copied byte for byte: nothing is recompressed, so layer digests
 * never change.
 */
import { UnsupportedError } from '../../protocol/errors';
import { sha256Digest } from '../image/digest';
import type { OpenedImage } from '../image/image';
import { dockerToOciManifest } from '../image/convert';
import { readAll, type ImageInstance } from '../image/instance';
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

async function planInstance(instance: ImageInstance, transport: string, opts: PlanOptions): Promise<{ manifest: PlannedManifest; blobs: PlannedBlob[] }> {
  if (instance.mediaType !== MediaTypes.ociManifest && instance.mediaType !== MediaTypes.dockerManifest) {
    throw new UnsupportedError(`copying a manifest of type ${JSON.stringify(instance.mediaType)} is not supported`);
  }
  const convert = opts.ociOnly && instance.mediaType === MediaTypes.dockerManifest;
  if (convert && opts.preserveDigests) refuseConversion('Image manifest', MediaTypes.ociManifest);
  const bytes = convert ? await convertedManifest(instance, transport, opts.signal) : instance.bytes;
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

const GZIP_MAGIC = [0x1f, 0x8b];

/** The first bytes of a blob. */
async function blobHead(instance: ImageInstance, d: Descriptor, signal: AbortSignal): Promise<Buffer> {
  const { stream } = await instance.openBlob({ digest: d.digest, size: d.size, signal, range: { offset: 0, length: GZIP_MAGIC.length } });
  return readAll(stream, GZIP_MAGIC.length, `the start of blob ${d.digest}`);
}

/**
 * The OCI form of a Docker schema 2 instance. A docker-archive: source calls every layer
 * gzip-compressed, as containers/image does, though `docker save` stores them uncompressed;
 * skopeo then gzips them for an oci: destination (new digests). layerpipe copies bytes as they
 * are, so such a layer is named for what it holds: an uncompressed tar.
 */
async function convertedManifest(instance: ImageInstance, transport: string, signal: AbortSignal): Promise<Buffer> {
  const m = parseImageManifest(instance.bytes, instance.mediaType);
  if (transport !== 'docker-archive') return instance.ociManifest();
  const layers = await Promise.all(m.layers.map(async (l) => {
    if (l.mediaType !== MediaTypes.dockerLayerGzip) return l;
    const head = await blobHead(instance, l, signal);
    return GZIP_MAGIC.every((b, i) => head[i] === b) ? l : { ...l, mediaType: MediaTypes.dockerLayer };
  }));
  return dockerToOciManifest({ ...m, layers }, await instance.ociConfig());
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
  const transport = image.source.reference.transport.name;
  const listType = image.top.mediaType;
  if (!opts.all || !isListType(listType)) {
    const one = await planInstance(image.chosen, transport, opts);
    addBlobs(blobs, one.blobs);
    return { blobs: ordered(blobs), instances: [], top: one.manifest };
  }
  const list = parseManifestList(image.top.bytes, listType);
  const instances: PlannedManifest[] = [];
  const entries: Descriptor[] = [];
  let changed = false;
  for (const entry of list.manifests) {
    const planned = await planInstance(await image.instanceByDigest(entry.digest, opts.signal), transport, opts);
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
