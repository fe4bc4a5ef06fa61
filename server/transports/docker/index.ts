/** The docker:// transport: images in container registries, "docker://[HOST[:PORT]/]REPO[:TAG][@DIGEST]". */
import { InvalidArgumentError } from '../../../protocol/errors';
import type { ImageReference, ImageSource, SystemContext, Transport } from '../../image/types';
import {
  parseDockerReference, policyIdentityOf, policyNamespacesOf, referenceString, type DockerReference,
} from '../../reference/docker-reference';
import { DockerImageSource, openDockerImage } from './source';
import { listRegistryTags } from './tags';

export class DockerImageReference implements ImageReference {
  constructor(
    readonly transport: Transport,
    readonly ref: DockerReference,
  ) {}

  toString(): string {
    return `${this.transport.name}://${referenceString(this.ref)}`;
  }

  get dockerReference(): DockerReference {
    return this.ref;
  }

  policyIdentity(): string {
    return policyIdentityOf(this.ref);
  }

  policyNamespaces(): string[] {
    return policyNamespacesOf(this.ref);
  }

  async newImageSource(ctx: SystemContext, signal: AbortSignal): Promise<ImageSource> {
    const opened = await openDockerImage(ctx, this.ref, signal);
    // A short name's image is known by the name it resolved to, for the policy too.
    const reference = opened.named === this.ref ? this : new DockerImageReference(this.transport, opened.named);
    return new DockerImageSource(reference, opened, ctx);
  }
}

export const dockerTransport: Transport = {
  name: 'docker',
  parseReference(reference: string): ImageReference {
    if (!reference.startsWith('//')) {
      throw new InvalidArgumentError(`docker: image reference ${JSON.stringify(reference)} does not start with //`);
    }
    return new DockerImageReference(dockerTransport, parseDockerReference(reference.slice(2)));
  },
  listTags: listRegistryTags,
};
