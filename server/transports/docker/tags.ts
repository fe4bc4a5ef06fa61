/**
 * Listing a repository's tags (ListTags on "docker://[HOST/]REPO", no tag or digest, as
 * skopeo list-tags takes it). A short name means docker.io, as with containers' list-tags (no
 * search registries: a tag list is of one repository). The registry is reached as OpenImage
 * reaches it: registries.conf's primary location for the name (mirrors may hold only some of
 * the tags, so they are not asked), blocked and insecure registries, credentials and TLS files.
 *
 * Pages are asked for with `n`; the next page is the Link header's target (only its path and
 * query: it is always asked of the same registry), or, when a registry pages without Link, a
 * full page is followed by `last=<its last tag>`. The listing is bounded in tags, bytes and pages.
 */
import { InvalidArgumentError, UnsupportedError } from '../../../protocol/errors';
import { loadRegistriesConfig, pullSourcesFor } from '../../config/registries-conf';
import type { SystemContext } from '../../image/types';
import { nameOf, parseNormalizedNamed, referenceString } from '../../reference/docker-reference';
import { checkRegistryOptions, registryClientFor } from './source';

/** Tags asked for per page. */
export const TAG_PAGE_SIZE = 1000;
/** More tags than this and the listing is refused rather than held in memory. */
export const MAX_TAGS = 100_000;
/** Bytes of tag-list JSON read over all pages. */
export const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;
/** Pages followed at most (a registry sending empty pages with a Link forever). */
const MAX_PAGES = 10_000;

function tagsOfPage(body: Buffer, where: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new UnsupportedError(`${where}: the tag list is not JSON: ${(err as Error).message}`);
  }
  const tags = typeof parsed === 'object' && parsed !== null ? (parsed as { tags?: unknown }).tags : undefined;
  if (tags === null || tags === undefined) return [];
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) throw new UnsupportedError(`${where}: "tags" is not a list of strings`);
  return tags as string[];
}

/** The path and query of a Link header's rel="next" target, or undefined. */
export function nextPageOf(link: string | undefined, where: string): string | undefined {
  if (link === undefined) return undefined;
  const m = /<([^>]*)>\s*;[^,]*\brel="?next"?/i.exec(link);
  if (m === null) return undefined;
  const target = new URL(m[1]!, 'http://registry.invalid');
  if (!target.pathname.startsWith('/v2/')) throw new UnsupportedError(`${where}: the registry's next page ${JSON.stringify(m[1])} is not a /v2/ path`);
  return target.pathname + target.search;
}

/** The tags of the repository `reference` (what follows "docker:") names. */
export async function listRegistryTags(reference: string, ctx: SystemContext, signal: AbortSignal): Promise<string[]> {
  if (!reference.startsWith('//')) throw new InvalidArgumentError(`docker: repository reference ${JSON.stringify(reference)} does not start with //`);
  const named = parseNormalizedNamed(reference.slice(2));
  if (named.tag !== undefined || named.digest !== undefined) {
    throw new InvalidArgumentError(`no tag or digest allowed in a repository reference to list tags of: ${referenceString(named)}`);
  }
  checkRegistryOptions(ctx);
  const config = await loadRegistriesConfig({ path: ctx.registry.registriesConf });
  const primary = pullSourcesFor(config, nameOf(named), 'tag').at(-1)!;
  const physical = parseNormalizedNamed(primary.name);
  const client = await registryClientFor(ctx, named, physical, primary.insecure, config, signal);
  const where = `listing tags of ${nameOf(physical)}`;

  const first = `/v2/${physical.repository}/tags/list?n=${TAG_PAGE_SIZE}`;
  const tags: string[] = [];
  const seen = new Set<string>();
  let bytes = 0;
  let page: string | undefined = first;
  for (let pages = 0; page !== undefined; pages++) {
    if (pages >= MAX_PAGES) throw new UnsupportedError(`${where}: more than ${MAX_PAGES} pages`);
    const { body, link } = await client.getTagListPage(physical.repository, page, MAX_TAG_LIST_BYTES - bytes, signal);
    bytes += body.length;
    const pageTags = tagsOfPage(body, where);
    const fresh = pageTags.filter((t) => !seen.has(t));
    for (const t of fresh) seen.add(t);
    tags.push(...fresh);
    if (tags.length > MAX_TAGS) throw new UnsupportedError(`${where}: the repository has more than ${MAX_TAGS} tags, more than layerpipe lists`);
    // A page that brings nothing new ends the listing, whatever the registry says: it would loop.
    if (fresh.length === 0) break;
    page = nextPageOf(link, where);
    if (page === undefined && link === undefined && pageTags.length === TAG_PAGE_SIZE) {
      page = `${first}&last=${encodeURIComponent(pageTags[pageTags.length - 1]!)}`;
    }
  }
  return tags;
}
