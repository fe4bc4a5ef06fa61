/**
 * Docker image references ("docker://" is stripped before this): the grammar of
 * docker/distribution's reference package, normalised the way docker and containers tools do.
 *
 *   busybox                     -> docker.io/library/busybox:latest
 *   quay.io/a/b@sha256:…        -> quay.io/a/b, digest
 *   localhost:5000/x:v1         -> registry localhost:5000
 *   [::1]:5000/x                -> IPv6 literal registry
 *   registry/x:tag@sha256:…     -> tag and digest together: the digest decides what is fetched
 *
 * The domain is the part before the first "/" when it contains "." or ":" or is "localhost";
 * otherwise the name is short and docker.io is assumed (short names may instead be searched
 * in registries.conf's unqualified-search-registries; see index.ts).
 */
import { InvalidArgumentError } from '../../protocol/errors';
import { parseDigest } from '../image/digest';

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
const OFFICIAL_NAMESPACE = 'library';
export const DEFAULT_TAG = 'latest';
const MAX_NAME_LENGTH = 255;

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6_LITERAL = '\\[[a-fA-F0-9:]+\\]';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6_LITERAL})(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);
const IMAGE_ID_RE = /^[a-f0-9]{64}$/;

/** A fully qualified docker reference: registry, repository, and a tag or a digest (or both). */
export interface DockerReference {
  /** host[:port] as named (docker.io for Docker Hub); IPv6 literals keep their brackets. */
  readonly registry: string;
  /** The repository path inside the registry, e.g. "library/busybox". */
  readonly repository: string;
  /** The tag; "latest" when neither a tag nor a digest was given. */
  readonly tag: string | undefined;
  readonly digest: string | undefined;
  /** True when the input named no registry (so docker.io was assumed). */
  readonly shortName: boolean;
}

function invalid(input: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid docker reference ${JSON.stringify(input)}: ${why}`);
}

/** Splits "domain/remainder"; the domain is only recognised by its look ("." or ":" or localhost). */
function splitDomain(name: string): { domain: string | undefined; remainder: string } {
  // An IPv6 literal contains ':' itself, so look for the slash after a closing bracket.
  const slash = name.startsWith('[') ? name.indexOf('/', Math.max(name.indexOf(']'), 0)) : name.indexOf('/');
  if (slash < 0) return { domain: undefined, remainder: name };
  const first = name.slice(0, slash);
  if (!/[.:]/.test(first) && first !== 'localhost') return { domain: undefined, remainder: name };
  return { domain: first, remainder: name.slice(slash + 1) };
}

/**
 * Parses a reference as `docker://` takes it (without the "//"). Throws InvalidArgumentError
 * with the reason for anything the grammar does not allow.
 */
export function parseDockerReference(input: string): DockerReference {
  if (input === '') throw invalid(input, 'empty reference');
  if (IMAGE_ID_RE.test(input)) throw invalid(input, 'a 64-character hexadecimal string is an image ID, not a repository name');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid(input, `malformed digest ${JSON.stringify(digest)}`);
    try {
      parseDigest(digest);
    } catch (err) {
      throw invalid(input, (err as Error).message);
    }
  }

  const { domain: givenDomain, remainder } = splitDomain(rest);
  let namePart = remainder;
  let tag: string | undefined;
  const colon = remainder.lastIndexOf(':');
  if (colon >= 0) {
    tag = remainder.slice(colon + 1);
    namePart = remainder.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid(input, `malformed tag ${JSON.stringify(tag)}`);
  }

  if (givenDomain !== undefined && !DOMAIN_RE.test(givenDomain)) throw invalid(input, `malformed registry ${JSON.stringify(givenDomain)}`);
  if (namePart === '') throw invalid(input, 'missing repository name');
  if (namePart.toLowerCase() !== namePart) throw invalid(input, 'repository name must be lowercase');
  if (!PATH_RE.test(namePart)) throw invalid(input, `malformed repository name ${JSON.stringify(namePart)}`);

  let registry = givenDomain ?? DEFAULT_REGISTRY;
  if (registry === LEGACY_DEFAULT_REGISTRY) registry = DEFAULT_REGISTRY;
  let repository = namePart;
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `${OFFICIAL_NAMESPACE}/${repository}`;
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) {
    throw invalid(input, `repository name must not be more than ${MAX_NAME_LENGTH} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { registry, repository, tag, digest, shortName: givenDomain === undefined };
}

/** The same image in another registry (short-name search): docker.io gets its library/ prefix. */
export function withRegistry(ref: DockerReference, registry: string, shortRepository: string): DockerReference {
  if (!DOMAIN_RE.test(registry)) throw new InvalidArgumentError(`invalid registry ${JSON.stringify(registry)} in unqualified-search-registries`);
  const normalized = registry === LEGACY_DEFAULT_REGISTRY ? DEFAULT_REGISTRY : registry;
  const repository = normalized === DEFAULT_REGISTRY && !shortRepository.includes('/') ? `${OFFICIAL_NAMESPACE}/${shortRepository}` : shortRepository;
  return { ...ref, registry: normalized, repository, shortName: false };
}

/** The repository as the user wrote it for a short name (without the implied library/). */
export function shortRepositoryOf(ref: DockerReference): string {
  const prefix = `${OFFICIAL_NAMESPACE}/`;
  return ref.registry === DEFAULT_REGISTRY && ref.repository.startsWith(prefix) && !ref.repository.slice(prefix.length).includes('/')
    ? ref.repository.slice(prefix.length)
    : ref.repository;
}

/** "registry/repository". */
export function nameOf(ref: DockerReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** "registry/repository[:tag][@digest]". */
export function referenceString(ref: DockerReference): string {
  return `${nameOf(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** What the manifest endpoint is asked for: the digest when there is one (it pins content). */
export function manifestSelector(ref: DockerReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** The host:port to connect to: Docker Hub's API lives elsewhere than its name. */
export function endpointHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;
}

/**
 * The most specific policy scope of a docker reference: "host/repo:tag", or "host/repo@digest"
 * when it is pinned by digest (the digest decides what is fetched when both are given).
 */
export function policyIdentityOf(ref: DockerReference): string {
  return ref.digest !== undefined ? `${nameOf(ref)}@${ref.digest}` : `${nameOf(ref)}:${ref.tag ?? DEFAULT_TAG}`;
}

/**
 * The less specific scopes, most specific first: the repository, each parent namespace down to
 * host[:port], then the host's wildcard suffixes ("*.example.com", "*.com"; no port, since
 * wildcard scopes cannot carry one).
 */
export function policyNamespacesOf(ref: DockerReference): string[] {
  const out: string[] = [];
  let name = nameOf(ref);
  for (;;) {
    out.push(name);
    const slash = name.lastIndexOf('/');
    if (slash < 0) break;
    name = name.slice(0, slash);
  }
  let host = ref.registry.startsWith('[') ? '' : ref.registry.replace(/:[0-9]+$/, '');
  for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.')) {
    host = host.slice(dot + 1);
    out.push(`*.${host}`);
  }
  return out;
}
