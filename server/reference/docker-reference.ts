/**
 * Docker image references, the one place they are parsed, normalised and formatted: docker://
 * (after "//"), docker-archive: names and manifest.json RepoTags, registries.conf aliases and
 * search registries, credential lookups and signature policy scopes.
 *
 *   busybox                     -> docker.io/library/busybox:latest
 *   quay.io/a/b@sha256:…        -> quay.io/a/b, digest
 *   localhost:5000/x:v1         -> registry localhost:5000
 *   [::1]:5000/x                -> IPv6 literal registry
 *   registry/x:tag@sha256:…     -> tag and digest together: the digest decides what is fetched
 *
 * The syntax is grammar.ts's. Two wordings of the same refusals exist: docker:// says what is
 * wrong in its own words; docker-archive: must say what skopeo says, which is the reference
 * library's ("invalid reference format", …).
 */
import { clipInput, InvalidArgumentError } from '../../protocol/errors';
import { parseDigest } from '../image/digest';
import { isValidDomain, splitReference, type ReferenceParts, type ReferenceProblem } from './grammar';

const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
/** Where Docker Hub's registry API is served; its name stays docker.io. */
const DEFAULT_REGISTRY_ENDPOINT = 'registry-1.docker.io';
const OFFICIAL_NAMESPACE = 'library';
const DEFAULT_TAG = 'latest';
const MAX_NAME_LENGTH = 255;

/** A normalised docker reference: registry, repository, and a tag or a digest (or both, or, for RepoTags, neither). */
export interface DockerReference {
  /** host[:port] as named (docker.io for Docker Hub); IPv6 literals keep their brackets. */
  readonly registry: string;
  /** The repository path inside the registry, e.g. "library/busybox". */
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
  /** True when the input named no registry (so docker.io was assumed). */
  readonly shortName: boolean;
  /**
   * For a short name, the repository exactly as written ("busybox", or "library/busybox"):
   * what aliases and unqualified-search-registries apply to. Undefined when a registry was named.
   */
  readonly shortRepository: string | undefined;
}

/** Long hostile inputs are cut in messages; the start says enough. */
function quote(value: string): string {
  return JSON.stringify(clipInput(value));
}

/** Registry defaults: docker.io for short names, index.docker.io is docker.io, library/ for its one-component names. */
function normalise(parts: ReferenceParts): DockerReference {
  let registry = parts.domain ?? DEFAULT_REGISTRY;
  if (registry === LEGACY_DEFAULT_REGISTRY) registry = DEFAULT_REGISTRY;
  const repository = registry === DEFAULT_REGISTRY && !parts.path.includes('/') ? `${OFFICIAL_NAMESPACE}/${parts.path}` : parts.path;
  const short = parts.domain === undefined;
  return { registry, repository, tag: parts.tag, digest: parts.digest, shortName: short, shortRepository: short ? parts.path : undefined };
}

/** Beyond syntax: a normalised name over the length limit, a digest parseDigest refuses (its message). */
type Problem = ReferenceProblem | { readonly kind: 'too-long' } | { readonly kind: 'digest-value'; readonly message: string };
type Wording = (problem: Problem) => string;

/** Syntax, then the length of the normalised name, then the digest's algorithm and length (the library's order). */
function parseWith(input: string, word: Wording): DockerReference {
  const split = splitReference(input);
  if (!split.ok) throw new InvalidArgumentError(word(split.problem));
  const ref = normalise(split.parts);
  if (nameOf(ref).length > MAX_NAME_LENGTH) throw new InvalidArgumentError(word({ kind: 'too-long' }));
  if (ref.digest !== undefined) {
    try {
      parseDigest(ref.digest);
    } catch (err) {
      if (!(err instanceof InvalidArgumentError)) throw err;
      throw new InvalidArgumentError(word({ kind: 'digest-value', message: err.message }), { cause: err });
    }
  }
  return ref;
}

/** docker://'s own words for the part at fault. */
function dockerReason(problem: Problem): string {
  switch (problem.kind) {
    case 'empty': return 'empty reference';
    case 'image-id': return 'a 64-character hexadecimal string is an image ID, not a repository name';
    case 'uppercase': return 'repository name must be lowercase';
    case 'digest': return `malformed digest ${quote(problem.digest)}`;
    case 'tag': return `malformed tag ${quote(problem.tag)}`;
    case 'domain': return `malformed registry ${quote(problem.domain)}`;
    case 'no-path': return 'missing repository name';
    case 'path': return `malformed repository name ${quote(problem.path)}`;
    case 'too-long': return `repository name must not be more than ${MAX_NAME_LENGTH} characters`;
    case 'digest-value': return problem.message;
  }
}

/** The reference library's words (ParseNormalizedNamed), which skopeo's docker-archive: errors carry. */
function libraryWording(input: string): Wording {
  return (problem) => {
    switch (problem.kind) {
      case 'image-id': return `invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`;
      case 'uppercase': return 'invalid reference format: repository name must be lowercase';
      case 'too-long': return `repository name must not be more than ${MAX_NAME_LENGTH} characters`;
      case 'digest-value': return problem.message;
      default: return 'invalid reference format';
    }
  };
}

/**
 * Parses a reference as docker:// takes it (without the "//"); ":latest" is implied when
 * neither a tag nor a digest is given. Throws InvalidArgumentError saying what is wrong.
 */
export function parseDockerReference(input: string): DockerReference {
  return withDefaultTag(parseWith(input, (problem) => `invalid docker reference ${quote(input)}: ${dockerReason(problem)}`));
}

/**
 * Parses a name the way the reference library's ParseNormalizedNamed does (docker-archive:
 * names, manifest.json RepoTags): no tag is implied; InvalidArgumentError in that library's words.
 */
export function parseNormalizedNamed(input: string): DockerReference {
  return parseWith(input, libraryWording(input));
}

/** Adds the default tag to a reference with neither tag nor digest. */
export function withDefaultTag(ref: DockerReference): DockerReference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: DEFAULT_TAG } : ref;
}

/**
 * The image of `ref` (its tag and digest) under another fully-qualified name, as a short name
 * becomes when an alias names it. The name is parsed as a whole, so docker.io adds library/
 * and the length limit applies to the result.
 */
export function renamed(ref: DockerReference, name: string): DockerReference {
  const target = parseDockerReference(name);
  return withDefaultTag({ ...target, tag: ref.tag, digest: ref.digest });
}

/** A short name in one of the unqualified-search-registries: "REGISTRY/PATH as written". */
export function inRegistry(ref: DockerReference, registry: string): DockerReference {
  return renamed(ref, `${registry}/${shortRepositoryOf(ref)}`);
}

/** The repository as the user wrote it for a short name (without the implied library/). */
export function shortRepositoryOf(ref: DockerReference): string {
  return ref.shortRepository ?? ref.repository;
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
  return registry === DEFAULT_REGISTRY ? DEFAULT_REGISTRY_ENDPOINT : registry;
}

/** host[:port] as registries.conf's unqualified-search-registries entries must be. */
export function isRegistryHost(value: string): boolean {
  return isValidDomain(value);
}

/**
 * The most specific policy scope of a docker reference: "host/repo:tag", or "host/repo@digest"
 * when it is pinned by digest (the digest decides what is fetched when both are given; the
 * reference library would refuse such a reference instead).
 */
export function policyIdentityOf(ref: DockerReference): string {
  return ref.digest !== undefined ? `${nameOf(ref)}@${ref.digest}` : `${nameOf(ref)}:${ref.tag ?? DEFAULT_TAG}`;
}

/**
 * The less specific scopes, most specific first, as containers/image's policyconfiguration
 * computes them: the repository, each parent namespace down to host[:port], then the host's
 * wildcard suffixes without the port ("*.example.com", "*.com"). An IPv6 literal has no
 * wildcard suffixes (its ":" are not a port separator).
 */
export function policyNamespacesOf(ref: DockerReference): string[] {
  const out: string[] = [];
  for (let name = nameOf(ref); ; ) {
    out.push(name);
    const slash = name.lastIndexOf('/');
    if (slash < 0) break;
    name = name.slice(0, slash);
  }
  if (ref.registry.startsWith('[')) return out;
  const colon = ref.registry.indexOf(':');
  let host = colon < 0 ? ref.registry : ref.registry.slice(0, colon);
  for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.')) {
    host = host.slice(dot + 1);
    out.push(`*.${host}`);
  }
  return out;
}
