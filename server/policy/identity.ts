/**
 * signedIdentity: whether the docker reference a signature claims fits the image, as
 * containers-policy.json(5) defines each kind. References are compared in their normalised
 * string form (docker.io/library/…), as the reference library compares them.
 */
import { nameOf, parseNormalizedNamed, referenceString, type DockerReference } from '../reference/docker-reference';
import type { IdentityMatch } from './types';

function parseOrUndefined(s: string): DockerReference | undefined {
  try {
    return parseNormalizedNamed(s);
  } catch {
    return undefined;
  }
}

const nameOnly = (r: DockerReference): boolean => r.tag === undefined && r.digest === undefined;

/** Exact match of two references, neither of which may be a bare name. */
function exact(a: DockerReference, b: DockerReference): boolean {
  return !nameOnly(a) && !nameOnly(b) && referenceString(a) === referenceString(b);
}

/**
 * matchRepoDigestOrExact: a tagged image needs the same tag signed; an image pinned by digest
 * accepts any signature of its repository (the digest itself is checked against the manifest).
 */
function repoDigestOrExact(intended: DockerReference, signed: DockerReference): boolean {
  if (nameOnly(signed)) return false;
  if (intended.tag !== undefined) return referenceString(signed) === referenceString(intended);
  if (intended.digest !== undefined) return nameOf(signed) === nameOf(intended);
  return false;
}

/** A prefix matches whole components: the reference equals it, or continues with ":", "/" or "@". */
function prefixMatches(ref: string, prefix: string): boolean {
  if (ref.length < prefix.length || !ref.startsWith(prefix)) return false;
  if (ref.length === prefix.length) return true;
  return ':/@'.includes(ref[prefix.length]!);
}

/** The image's reference with `prefix` replaced by `signedPrefix`; undefined when the result is not a canonical name. */
function remap(ref: DockerReference, prefix: string, signedPrefix: string): DockerReference | undefined {
  const s = referenceString(ref);
  if (!prefixMatches(s, prefix)) return ref;
  const rewritten = signedPrefix + s.slice(prefix.length);
  const parsed = parseOrUndefined(rewritten);
  // The reference library's ParseNamed takes only names already in canonical form.
  return parsed !== undefined && referenceString(parsed) === rewritten ? parsed : undefined;
}

/** Whether `signedReference` (from a verified signature) is accepted for an image known as `image`. */
export function identityMatches(match: IdentityMatch, image: DockerReference | undefined, signedReference: string): boolean {
  const signed = parseOrUndefined(signedReference);
  if (signed === undefined) return false;
  switch (match.type) {
    case 'matchExact':
      return image !== undefined && exact(image, signed);
    case 'matchRepoDigestOrExact':
      return image !== undefined && repoDigestOrExact(image, signed);
    case 'matchRepository':
      return image !== undefined && nameOf(signed) === nameOf(image);
    case 'exactReference': {
      const wanted = parseOrUndefined(match.dockerReference);
      return wanted !== undefined && exact(wanted, signed);
    }
    case 'exactRepository': {
      const wanted = parseOrUndefined(match.dockerRepository);
      return wanted !== undefined && nameOf(signed) === nameOf(wanted);
    }
    case 'remapIdentity': {
      if (image === undefined) return false;
      const mapped = remap(image, match.prefix, match.signedPrefix);
      return mapped !== undefined && repoDigestOrExact(mapped, signed);
    }
  }
}
