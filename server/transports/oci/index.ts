/** The oci: transport: an OCI image layout in a directory, "oci:DIR[:REF]". */
import { EXPECTED, openingAs } from '../local/expected';
import type { ImageReference, ImageSource, SystemContext, Transport } from '../../image/types';
import { ConfinedDirectory } from '../local/confined-dir';
import { LocalPathReference, pathAndParents } from '../local/policy-scope';
import { layoutPathToList, layoutRefNames, openLayoutSource, splitLayoutReference } from './layout';

/** The policy scope is the layout directory alone: "DIR:REF" and "DIR:" may name the same image, so REF cannot narrow it. */
class OciReference extends LocalPathReference implements ImageReference {
  constructor(
    readonly transport: Transport,
    readonly dir: string,
    readonly ref: string,
  ) {
    super(dir, pathAndParents);
  }

  override toString(): string {
    return `${this.transport.name}:${this.dir}${this.ref === '' ? '' : `:${this.ref}`}`;
  }

  async newImageSource(_ctx: SystemContext, _signal: AbortSignal): Promise<ImageSource> {
    // The layout's directory stays open, and every file is opened beneath it, until the source closes.
    const files = await openingAs(EXPECTED.oci, () => ConfinedDirectory.open(this.dir));
    return openingAs(EXPECTED.oci, () => openLayoutSource(this, files, this.ref, this.dir));
  }
}

export const ociTransport: Transport = {
  name: 'oci',
  parseReference(reference: string): ImageReference {
    const { path: dir, ref } = splitLayoutReference(reference, 'oci');
    return new OciReference(ociTransport, dir, ref);
  },
  async listTags(reference: string): Promise<string[]> {
    const files = await openingAs(EXPECTED.oci, () => ConfinedDirectory.open(layoutPathToList(reference, 'oci')));
    try {
      return await layoutRefNames(files);
    } finally {
      await files.close();
    }
  },
};
