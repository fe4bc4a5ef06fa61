/**
 * The docker-archive: transport, "docker-archive:FILE[:NAME[:TAG]|:@N]": an image of a
 * `docker save` / `podman save` archive, chosen by one of its RepoTags (normalised, ":latest"
 * by default) or by its position in manifest.json. The archive is indexed once and served by
 * byte ranges (../archive/tar-archive.ts); unlike skopeo, a missing tag or index is reported
 * when the image is opened, as ImageNotFoundError, so OpenImageOptional answers 0.
 */
import { EXPECTED, openingAs } from '../local/expected';
import { InvalidArgumentError } from '../../../protocol/errors';
import type { ImageReference, ImageSource, SystemContext, Transport } from '../../image/types';
import { parseNormalizedNamed, referenceString, withDefaultTag, type DockerReference } from '../../reference/docker-reference';
import { TarArchive } from '../archive/tar-archive';
import { DockerArchiveSource, MANIFEST_FILE } from './source';
import { MAX_TAR_MANIFEST_SIZE, parseTarManifest, type ImageSelector } from './tar-manifest';

/** containers/image follows exactly one symbolic link when looking a file up in the archive. */
const MAX_LINK_HOPS = 1;

class DockerArchiveReference implements ImageReference {
  constructor(
    readonly transport: Transport,
    readonly file: string,
    readonly selector: ImageSelector,
  ) {}

  toString(): string {
    const s = this.selector;
    const suffix = s.kind === 'tag' ? `:${referenceString(s.name)}` : s.kind === 'index' ? `:@${s.index}` : '';
    return `${this.transport.name}:${this.file}${suffix}`;
  }

  /** The tag the reference selects by, if it selects by one. */
  get dockerReference(): DockerReference | undefined {
    return this.selector.kind === 'tag' ? this.selector.name : undefined;
  }

  /** containers/image gives docker-archive: no scope of its own: only the transport's "" entry applies. */
  policyIdentity(): string {
    return '';
  }

  policyNamespaces(): string[] {
    return [];
  }

  async newImageSource(ctx: SystemContext, signal: AbortSignal): Promise<ImageSource> {
    const archive = await openingAs(EXPECTED['docker-archive'], () => TarArchive.open(this.file, ctx, { maxLinkHops: MAX_LINK_HOPS }, signal));
    return DockerArchiveSource.open(this, archive, this.selector);
  }
}

function parseSelector(text: string): ImageSelector {
  if (text.startsWith('@')) {
    const digits = text.slice(1);
    if (!/^[+-]?[0-9]+$/.test(digits)) throw new InvalidArgumentError(`Invalid source index ${text}: not a number`);
    const index = Number(digits);
    if (index < 0) throw new InvalidArgumentError(`Invalid source index @${index}: must not be negative`);
    if (!Number.isSafeInteger(index)) throw new InvalidArgumentError(`Invalid source index ${text}: out of range`);
    return { kind: 'index', index };
  }
  let parsed: DockerReference;
  try {
    parsed = withDefaultTag(parseNormalizedNamed(text));
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    throw new InvalidArgumentError(`docker-archive parsing reference: ${err.message}`, { cause: err });
  }
  if (parsed.tag === undefined) throw new InvalidArgumentError(`reference does not include a tag: ${referenceString(parsed)}`);
  if (parsed.digest !== undefined) throw new InvalidArgumentError(`docker-archive doesn't support digest references: ${referenceString(parsed)}`);
  return { kind: 'tag', name: parsed };
}

export const dockerArchiveTransport: Transport = {
  name: 'docker-archive',
  parseReference(reference: string): ImageReference {
    const colon = reference.indexOf(':');
    const file = colon < 0 ? reference : reference.slice(0, colon);
    if (file === '') throw new InvalidArgumentError(`docker-archive reference ${reference} isn't of the form <path>[:<reference>]`);
    const selector: ImageSelector = colon < 0 ? { kind: 'only' } : parseSelector(reference.slice(colon + 1));
    return new DockerArchiveReference(dockerArchiveTransport, file, selector);
  },
  /** As skopeo list-tags: every RepoTag of every image in the archive, fully qualified, whatever image the reference selects. */
  async listTags(reference: string, ctx: SystemContext, signal: AbortSignal): Promise<string[]> {
    const { file } = dockerArchiveTransport.parseReference(reference) as DockerArchiveReference;
    const archive = await openingAs(EXPECTED['docker-archive'], () => TarArchive.open(file, ctx, { maxLinkHops: MAX_LINK_HOPS }, signal));
    try {
      const items = parseTarManifest(await archive.read(MANIFEST_FILE, MAX_TAR_MANIFEST_SIZE));
      return items.flatMap((item) => item.repoTags.map((tag) => referenceString(parseNormalizedNamed(tag))));
    } finally {
      await archive.close();
    }
  },
};
