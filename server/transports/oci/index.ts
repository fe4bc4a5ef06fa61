/** The oci: transport: an OCI image layout in a directory, "oci:DIR[:REF]". */
import type { ImageReference, ImageSource, SystemContext, Transport } from '../../image/types';
import { ConfinedDirectory } from '../local/confined-dir';
import { LocalPathScope, pathAndParents } from '../local/policy-scope';
import { LayoutImageSource, resolveLayoutDescriptor, splitLayoutReference } from './layout';

class OciReference implements ImageReference {
  private readonly scope: LocalPathScope;

  constructor(
    readonly transport: Transport,
    readonly dir: string,
    readonly ref: string,
  ) {
    this.scope = new LocalPathScope(dir, pathAndParents);
  }

  toString(): string {
    return `${this.transport.name}:${this.dir}${this.ref === '' ? '' : `:${this.ref}`}`;
  }

  readonly dockerReference = undefined;

  /** The layout directory alone: "DIR:REF" and "DIR:" may name the same image, so REF cannot narrow the scope. */
  policyIdentity(): string {
    return this.scope.identity();
  }

  policyNamespaces(): string[] {
    return this.scope.namespaces();
  }

  async newImageSource(_ctx: SystemContext, _signal: AbortSignal): Promise<ImageSource> {
    // The layout's directory stays open, and every file is opened beneath it, until the source closes.
    const files = await ConfinedDirectory.open(this.dir);
    try {
      const descriptor = await resolveLayoutDescriptor(files, this.ref, this.dir);
      return new LayoutImageSource(this, files, descriptor, () => files.close());
    } catch (err) {
      await files.close();
      throw err;
    }
  }
}

export const ociTransport: Transport = {
  name: 'oci',
  parseReference(reference: string): ImageReference {
    const { path: dir, ref } = splitLayoutReference(reference, 'oci');
    return new OciReference(ociTransport, dir, ref);
  },
};
