/**
 * manifest.json of a `docker save` archive: one item per image, naming its config file, its
 * tags and its layer tars (in the legacy layout "ID/layer.tar", since Docker 25 "blobs/sha256/HEX").
 * Decoded as Go's encoding/json would (keys matched case-insensitively, null for "none"),
 * and an item chosen by tag or position as skopeo chooses it.
 */
import { ImageNotFoundError, InvalidArgumentError, UnsupportedError } from '../../../protocol/errors';
import { parseNormalizedNamed, referenceString, type DockerReference } from '../../reference/docker-reference';

/** skopeo's limit for manifest.json (which may list many images). */
export const MAX_TAR_MANIFEST_SIZE = 1024 * 1024;

export interface TarManifestItem {
  readonly config: string;
  readonly repoTags: readonly string[];
  readonly layers: readonly string[];
}

/** Which image of the archive a reference wants. */
export type ImageSelector = { readonly kind: 'only' } | { readonly kind: 'tag'; readonly name: DockerReference } | { readonly kind: 'index'; readonly index: number };

function invalid(what: string): UnsupportedError {
  return new UnsupportedError(`decoding tar manifest.json: ${what}`);
}

/** The member of `obj` Go would decode into field `field`: exact name first, else any case. */
function member(obj: Record<string, unknown>, field: string): unknown {
  if (field in obj) return obj[field];
  const lower = field.toLowerCase();
  for (const key of Object.keys(obj)) if (key.toLowerCase() === lower) return obj[key];
  return undefined;
}

function stringField(value: unknown, where: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalid(`${where} is not a string`);
  return value;
}

function stringListField(value: unknown, where: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(`${where} is not an array of strings`);
  return value.map((v, i) => stringField(v, `${where}[${i}]`));
}

export function parseTarManifest(bytes: Buffer): TarManifestItem[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalid((err as Error).message);
  }
  if (parsed === null) return [];
  if (!Array.isArray(parsed)) throw invalid('not a JSON array');
  return parsed.map((raw: unknown, i): TarManifestItem => {
    if (raw === null) return { config: '', repoTags: [], layers: [] };
    if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`item @${i} is not an object`);
    const item = raw as Record<string, unknown>;
    return {
      config: stringField(member(item, 'Config'), `item @${i} Config`),
      repoTags: stringListField(member(item, 'RepoTags'), `item @${i} RepoTags`),
      layers: stringListField(member(item, 'Layers'), `item @${i} Layers`),
    };
  });
}

/**
 * The item the selector names. An image the archive does not hold (unknown tag, index past
 * the end, an empty archive) is ImageNotFoundError; several images with no selector is an
 * invalid argument, as for oci:.
 */
export function chooseItem(items: readonly TarManifestItem[], selector: ImageSelector): TarManifestItem {
  switch (selector.kind) {
    case 'tag': {
      // Compared normalised: "busybox:latest" in RepoTags is docker.io/library/busybox:latest.
      const wanted = referenceString(selector.name);
      for (const [i, item] of items.entries()) {
        for (const tag of item.repoTags) {
          let parsed: DockerReference;
          try {
            parsed = parseNormalizedNamed(tag);
          } catch (err) {
            if (!(err instanceof InvalidArgumentError)) throw err;
            throw new UnsupportedError(`Invalid tag ${JSON.stringify(tag)} in manifest.json item @${i}: ${err.message}`, { cause: err });
          }
          if (referenceString(parsed) === wanted) return item;
        }
      }
      throw new ImageNotFoundError(`Tag ${JSON.stringify(wanted)} not found`);
    }
    case 'index': {
      const item = items[selector.index];
      if (item === undefined) {
        throw new ImageNotFoundError(`Invalid source index @${selector.index}, only ${items.length} manifest items available`);
      }
      return item;
    }
    case 'only':
      if (items.length === 1) return items[0]!;
      if (items.length === 0) throw new ImageNotFoundError('Unexpected tar manifest.json: expected 1 item, got 0');
      throw new InvalidArgumentError(`Unexpected tar manifest.json: expected 1 item, got ${items.length}; choose one with :NAME:TAG or :@N`);
  }
}
