/**
 * Reading an OCI image layout (index.json + blobs/ALG/HEX) through any file store: a directory
 * for oci:, a tar file for oci-archive:. Resolves the REF of "PATH[:REF]" to a descriptor.
 */
import { clipInput, ImageNotFoundError, InvalidArgumentError } from '../../../protocol/errors';
import { parseDigest, verifyBytes } from '../../image/digest';
import { MAX_MANIFEST_SIZE, MediaTypes, parseManifestList } from '../../image/manifest';
import type { BlobReader, BlobRequest, Descriptor, ImageReference, ImageSource, RawManifest } from '../../image/types';
import type { OpenedFile } from '../local/confined-dir';

/** The files of a layout, wherever they are kept. Paths are relative to the layout's root. */
export interface LayoutFiles {
  read(rel: string, limit: number): Promise<Buffer>;
  open(rel: string): Promise<OpenedFile>;
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

const MAX_INDEX_DEPTH = 8;

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
 * annotation equals REF, looking into nested indexes when the top level has no match.
 */
export async function resolveLayoutDescriptor(files: LayoutFiles, ref: string, where: string): Promise<Descriptor> {
  const top = await readIndex(files, undefined);
  if (ref === '') {
    if (top.length === 1) return top[0]!;
    if (top.length === 0) throw new ImageNotFoundError(`no image in ${where}`);
    throw new InvalidArgumentError('more than one image in oci, choose an image');
  }
  const isImageOrIndex = (d: Descriptor) => d.mediaType === MediaTypes.ociManifest || d.mediaType === MediaTypes.ociIndex;
  let level = top;
  for (let depth = 0; depth < MAX_INDEX_DEPTH && level.length > 0; depth++) {
    const match = level.find((d) => isImageOrIndex(d) && d.annotations?.[REF_NAME_ANNOTATION] === ref);
    if (match !== undefined) return match;
    const next: Descriptor[] = [];
    for (const d of level) {
      if (d.mediaType === MediaTypes.ociIndex) next.push(...(await readIndex(files, d.digest)));
    }
    level = next;
  }
  throw new ImageNotFoundError(`no descriptor found for reference ${JSON.stringify(ref)}`);
}

/** An ImageSource over a layout, fixed to one top-level descriptor. */
export class LayoutImageSource implements ImageSource {
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
    const file = await this.files.open(blobPath(request.digest));
    return { stream: file.stream, size: file.size };
  }

  close(): Promise<void> {
    return this.onClose();
  }
}
