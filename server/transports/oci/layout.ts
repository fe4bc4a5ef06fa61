/**
 * Reading an OCI image layout (index.json + blobs/ALG/HEX) through any file store: a directory
 * for oci:, a tar file for oci-archive:. Resolves the REF of "PATH[:REF]" to a descriptor.
 */
import { clipInput, ImageNotFoundError, InvalidArgumentError, UnsupportedError } from '../../../protocol/errors';
import { parseDigest, verifyBytes } from '../../image/digest';
import { MAX_MANIFEST_SIZE, MediaTypes, parseManifestList } from '../../image/manifest';
import type { ByteRange } from '../../image/range';
import type { BlobReader, BlobRequest, Descriptor, ImageReference, ImageSource, RawManifest } from '../../image/types';
import type { OpenedFile } from '../local/confined-dir';

/** The files of a layout, wherever they are kept. Paths are relative to the layout's root. */
export interface LayoutFiles {
  read(rel: string, limit: number): Promise<Buffer>;
  /** A file, or a byte range of it (the size is then the range's). */
  open(rel: string, range?: ByteRange): Promise<OpenedFile>;
}

const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

// The ref grammar of the OCI annotation: components of alphanumerics joined by [-._:@+] or "--".
const ALPHANUM = '[A-Za-z0-9]+';
const COMPONENT = `${ALPHANUM}(?:(?:[-._:@+]|--)${ALPHANUM})*`;
const REF_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);

/** Splits "PATH[:REF]" and validates both halves, as the oci: and oci-archive: transports do. */
export function splitLayoutReference(reference: string, transport: string): { path: string; ref: string } {
  const colon = reference.indexOf(':');
  const path = colon < 0 ? reference : reference.slice(0, colon);
  const ref = colon < 0 ? '' : reference.slice(colon + 1);
  if (path === '') throw new InvalidArgumentError(`Invalid ${transport} reference: empty path`);
  if (ref !== '' && !REF_PATTERN.test(ref)) throw new InvalidArgumentError(`Invalid image ${clipInput(ref)}`);
  return { path, ref };
}

/** How many levels of nested indexes a ref is looked for in. */
export const MAX_INDEX_DEPTH = 8;
/** How many nested index blobs one lookup reads, each once however often it is listed. */
export const MAX_NESTED_INDEXES = 64;
/** How many descriptors those nested indexes may hold in all. */
export const MAX_NESTED_DESCRIPTORS = 65_536;

function blobPath(digest: string): string {
  const d = parseDigest(digest);
  return `blobs/${d.algorithm}/${d.hex}`;
}

async function readIndex(files: LayoutFiles, digest: string | undefined): Promise<Descriptor[]> {
  const bytes = digest === undefined ? await files.read('index.json', MAX_MANIFEST_SIZE) : await files.read(blobPath(digest), MAX_MANIFEST_SIZE);
  if (digest !== undefined) verifyBytes(bytes, digest, 'image index');
  return [...parseManifestList(bytes, MediaTypes.ociIndex).manifests];
}

/**
 * The descriptor REF names: with no REF, the layout's only entry; else the entry whose ref.name
 * annotation equals REF, looking into nested indexes, level by level, when the top level has no
 * match. Every nested index is read once, whatever lists it and however often: an index that
 * lists the next one 32 times, five levels down, must not cost 32^5 reads. Past the bounds
 * above, the lookup stops with UnsupportedError rather than claim the ref is not there.
 * (skopeo 1.9.3 does not look into nested indexes at all.)
 */
export async function resolveLayoutDescriptor(files: LayoutFiles, ref: string, where: string): Promise<Descriptor> {
  const top = await readIndex(files, undefined);
  if (ref === '') {
    if (top.length === 1) return top[0]!;
    if (top.length === 0) throw new ImageNotFoundError(`no image in ${where}`);
    throw new InvalidArgumentError('more than one image in oci, choose an image');
  }
  const notFound = `no descriptor found for reference ${JSON.stringify(ref)}`;
  const isImageOrIndex = (d: Descriptor) => d.mediaType === MediaTypes.ociManifest || d.mediaType === MediaTypes.ociIndex;
  const read = new Set<string>();
  let descriptors = 0;
  let level = top;
  for (let depth = 0; ; depth++) {
    const match = level.find((d) => isImageOrIndex(d) && d.annotations?.[REF_NAME_ANNOTATION] === ref);
    if (match !== undefined) return match;
    const nested = new Set(level.filter((d) => d.mediaType === MediaTypes.ociIndex && !read.has(d.digest)).map((d) => d.digest));
    if (nested.size === 0) throw new ImageNotFoundError(notFound);
    if (depth >= MAX_INDEX_DEPTH) {
      throw new UnsupportedError(`${notFound}: image indexes in ${where} nest more than ${MAX_INDEX_DEPTH} levels deep, and deeper ones are not searched`);
    }
    const next: Descriptor[] = [];
    for (const digest of nested) {
      if (read.size >= MAX_NESTED_INDEXES) {
        throw new UnsupportedError(`${notFound}: ${where} has more than ${MAX_NESTED_INDEXES} nested image indexes, and no more are searched`);
      }
      read.add(digest);
      const entries = await readIndex(files, digest);
      descriptors += entries.length;
      if (descriptors > MAX_NESTED_DESCRIPTORS) {
        throw new UnsupportedError(`${notFound}: the nested image indexes of ${where} hold more than ${MAX_NESTED_DESCRIPTORS} descriptors, and no more are searched`);
      }
      next.push(...entries);
    }
    level = next;
  }
}

/**
 * The ref names of a layout (ListTags on oci: and oci-archive:): the ref.name annotations of
 * index.json's entries, in order, each once. Nested indexes are not looked into.
 */
export async function layoutRefNames(files: LayoutFiles): Promise<string[]> {
  const names = (await readIndex(files, undefined)).map((d) => d.annotations?.[REF_NAME_ANNOTATION]);
  return [...new Set(names.filter((n): n is string => typeof n === 'string' && n !== ''))];
}

/** Splits a reference to list the ref names of: a path, without a ref. */
export function layoutPathToList(reference: string, transport: string): string {
  const { path, ref } = splitLayoutReference(reference, transport);
  if (ref !== '') throw new InvalidArgumentError(`${transport}: no ref allowed in a layout reference to list tags of: ${clipInput(ref)}`);
  return path;
}


/**
 * The source of the image `ref` names in a layout whose files are open (a directory, an
 * archive): the files are closed with the source, or at once when the ref resolves to nothing.
 */
export async function openLayoutSource(
  reference: ImageReference, files: LayoutFiles & { close(): Promise<void> }, ref: string, where: string,
): Promise<ImageSource> {
  try {
    const descriptor = await resolveLayoutDescriptor(files, ref, where);
    return new LayoutImageSource(reference, files, descriptor, () => files.close());
  } catch (err) {
    await files.close();
    throw err;
  }
}

class LayoutImageSource implements ImageSource {
  constructor(
    readonly reference: ImageReference,
    private readonly files: LayoutFiles,
    private readonly descriptor: Descriptor,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  async getManifest(instanceDigest: string | undefined, _signal: AbortSignal): Promise<RawManifest> {
    const digest = instanceDigest ?? this.descriptor.digest;
    const bytes = await this.files.read(blobPath(digest), MAX_MANIFEST_SIZE);
    verifyBytes(bytes, digest, 'manifest');
    return { bytes, mediaType: instanceDigest === undefined ? this.descriptor.mediaType : '' };
  }

  async getBlob(request: BlobRequest): Promise<BlobReader> {
    const file = await this.files.open(blobPath(request.digest), request.range);
    return { stream: file.stream, size: file.size };
  }

  close(): Promise<void> {
    return this.onClose();
  }
}
