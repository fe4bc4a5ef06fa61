/**
 * Docker image names as `docker save` archives and the docker-archive: transport write them:
 * "busybox", "busybox:1.36", "example.com:5000/team/app:v1", normalised the way the Docker
 * CLI does (docker.io/library/ added to short names) so that "busybox:latest" in a reference
 * matches "docker.io/library/busybox:latest" in manifest.json's RepoTags, as in skopeo.
 * Written from the grammar of the distribution reference format.
 */
import { parseDigest } from '../../image/digest';

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const DEFAULT_TAG = 'latest';
const NAME_TOTAL_LENGTH_MAX = 255;

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]*)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const IMAGE_ID = /^[a-f0-9]{64}$/;

/** A parsed, normalised name: "domain/path", and an optional tag and digest ('' when absent). */
export interface DockerName {
  readonly name: string;
  readonly tag: string;
  readonly digest: string;
}

export function dockerNameString(n: DockerName): string {
  return `${n.name}${n.tag === '' ? '' : `:${n.tag}`}${n.digest === '' ? '' : `@${n.digest}`}`;
}

function splitDomain(s: string): { domain: string; remainder: string } {
  const slash = s.indexOf('/');
  let domain = DEFAULT_DOMAIN;
  let remainder = s;
  if (slash >= 0) {
    const first = s.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost') {
      domain = first;
      remainder = s.slice(slash + 1);
    }
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/** Parses and normalises a name; throws Error with the reference library's wording. */
export function parseNormalizedName(s: string): DockerName {
  if (IMAGE_ID.test(s)) throw new Error(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  const { domain, remainder } = splitDomain(s);
  const colon = remainder.indexOf(':');
  const repository = colon >= 0 ? remainder.slice(0, colon) : remainder;
  if (repository.toLowerCase() !== repository) throw new Error('invalid reference format: repository name must be lowercase');
  const full = `${domain}/${remainder}`;
  const m = REFERENCE.exec(full);
  if (m === null) {
    if (REFERENCE.test(full.toLowerCase())) throw new Error('repository name must be lowercase');
    throw new Error('invalid reference format');
  }
  const name = m[1]!;
  if (name.length > NAME_TOTAL_LENGTH_MAX) throw new Error(`repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`);
  const digest = m[3] ?? '';
  if (digest !== '') parseDigest(digest);
  return { name, tag: m[2] ?? '', digest };
}

/** Adds the default tag to a name that has neither tag nor digest. */
export function withDefaultTag(n: DockerName): DockerName {
  return n.tag === '' && n.digest === '' ? { ...n, tag: DEFAULT_TAG } : n;
}
