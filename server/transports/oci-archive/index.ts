/**
 * The oci-archive: transport, "oci-archive:FILE[:REF]": an OCI image layout inside a tar file.
 * skopeo unpacks the archive into a temporary directory; here the tar is indexed once and
 * every blob is served as a byte range of the file (see ../archive/tar-archive.ts). REF is
 * chosen as for oci:, and a REF the archive does not hold is ImageNotFoundError, so
 * OpenImageOptional answers 0 for it.
 */
import type { ImageReference, ImageSource, SystemContext, Transport } from '../../image/types';
import { TarArchive } from '../archive/tar-archive';
import { LocalPathScope, pathAndParents } from '../local/policy-scope';
import { LayoutImageSource, resolveLayoutDescriptor, splitLayoutReference } from '../oci/layout';

/** The layout's files are extracted by a real untar in skopeo, so link chains are followed (within the archive). */
const MAX_LINK_HOPS = 8;

class OciArchiveReference implements ImageReference {
  private readonly scope: LocalPathScope;

  constructor(
    readonly transport: Transport,
    readonly file: string,
    readonly ref: string,
  ) {
    this.scope = new LocalPathScope(file, pathAndParents);
  }

  toString(): string {
    return `${this.transport.name}:${this.file}${this.ref === '' ? '' : `:${this.ref}`}`;
  }

  readonly dockerReference = undefined;

  /** The archive file alone, as for oci: layouts. */
  policyIdentity(): string {
    return this.scope.identity();
  }

  policyNamespaces(): string[] {
    return this.scope.namespaces();
  }

  async newImageSource(ctx: SystemContext, signal: AbortSignal): Promise<ImageSource> {
    const archive = await TarArchive.open(this.file, ctx, { maxLinkHops: MAX_LINK_HOPS }, signal);
    try {
      const descriptor = await resolveLayoutDescriptor(archive, this.ref, this.file);
      return new LayoutImageSource(this, archive, descriptor, () => archive.close());
    } catch (err) {
      await archive.close();
      throw err;
    }
  }
}

export const ociArchiveTransport: Transport = {
  name: 'oci-archive',
  parseReference(reference: string): ImageReference {
    const { path: file, ref } = splitLayoutReference(reference, 'oci-archive');
    return new OciArchiveReference(ociArchiveTransport, file, ref);
  },
};
