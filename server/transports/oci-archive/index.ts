/**
 * The oci-archive: transport, "oci-archive:FILE[:REF]": an OCI image layout inside a tar file.
 * skopeo unpacks the archive into a temporary directory; here the tar is indexed once and
 * every blob is served as a byte range of the file (see ../archive/tar-archive.ts). REF is
 * chosen as for oci:, and a REF the archive does not hold is ImageNotFoundError, so
 * OpenImageOptional answers 0 for it.
 */
import { EXPECTED, openingAs } from '../local/expected';
import type { ImageReference, ImageSource, SystemContext, Transport } from '../../image/types';
import { TarArchive } from '../archive/tar-archive';
import { LocalPathReference, pathAndParents } from '../local/policy-scope';
import { layoutPathToList, layoutRefNames, openLayoutSource, splitLayoutReference } from '../oci/layout';

/** The layout's files are extracted by a real untar in skopeo, so link chains are followed (within the archive). */
const MAX_LINK_HOPS = 8;

/** The policy scope is the archive file alone, as for oci: layouts. */
class OciArchiveReference extends LocalPathReference implements ImageReference {
  constructor(
    readonly transport: Transport,
    readonly file: string,
    readonly ref: string,
  ) {
    super(file, pathAndParents);
  }

  override toString(): string {
    return `${this.transport.name}:${this.file}${this.ref === '' ? '' : `:${this.ref}`}`;
  }

  async newImageSource(ctx: SystemContext, signal: AbortSignal): Promise<ImageSource> {
    const archive = await openingAs(EXPECTED['oci-archive'], () => TarArchive.open(this.file, ctx, { maxLinkHops: MAX_LINK_HOPS }, signal));
    return openingAs(EXPECTED['oci-archive'], () => openLayoutSource(this, archive, this.ref, this.file));
  }
}

export const ociArchiveTransport: Transport = {
  name: 'oci-archive',
  parseReference(reference: string): ImageReference {
    const { path: file, ref } = splitLayoutReference(reference, 'oci-archive');
    return new OciArchiveReference(ociArchiveTransport, file, ref);
  },
  async listTags(reference: string, ctx: SystemContext, signal: AbortSignal): Promise<string[]> {
    const archive = await openingAs(EXPECTED['oci-archive'], () => TarArchive.open(layoutPathToList(reference, 'oci-archive'), ctx, { maxLinkHops: MAX_LINK_HOPS }, signal));
    try {
      return await layoutRefNames(archive);
    } finally {
      await archive.close();
    }
  },
};
