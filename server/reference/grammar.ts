/**
 * The syntax of docker references, "[DOMAIN/]PATH[:TAG][@DIGEST]", as docker/distribution's
 * reference package defines it (with its IPv6 literal hosts), checked without normalising.
 * docker-reference.ts normalises and words the errors; nothing else splits names.
 *
 * Every check runs in time linear in its input: a regex applied here has at most one
 * quantifier and no alternation under it, and the repeated parts of the grammar (dot-separated
 * labels, slash-separated components, separator runs) are split with indexOf/split and checked
 * one by one. A backtracking engine given the grammar's own nested patterns needs exponential
 * time on inputs such as "aaaaaaaaaaaaaaa!".
 */

/** "a": one lower-case alphanumeric. */
const ALNUM = /^[a-z0-9]$/;
/** The characters a path component may have at all. */
const PATH_COMPONENT_CHARS = /^[a-z0-9._-]+$/;
/** Runs of separator characters inside a component; each must be ".", "_", "__" or dashes. */
const SEPARATOR_RUN = /[._-]+/g;
const DASHES = /^-+$/;
/** One DNS label's characters; its first and last may not be "-" (checked apart). */
const LABEL_CHARS = /^[a-zA-Z0-9-]+$/;
const IPV6_LITERAL = /^\[[a-fA-F0-9:]+\]$/;
const PORT = /^[0-9]+$/;
const TAG = /^\w[\w.-]{0,127}$/;
/** One dot/dash/plus/underscore-separated part of a digest algorithm ("sha256", "b64"). */
const ALGORITHM_PART = /^[A-Za-z][A-Za-z0-9]*$/;
const ALGORITHM_SEPARATOR = /[-_+.]/;
const DIGEST_HEX = /^[0-9a-fA-F]{32,}$/;
/** A 64-character lower-case hex string: an image ID, never a repository name. */
const IMAGE_ID = /^[a-f0-9]{64}$/;

/** The pieces of a reference as written; domain is undefined when the input names none. */
export interface ReferenceParts {
  readonly domain: string | undefined;
  readonly path: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

/** Why a reference does not parse, for docker-reference.ts to word. */
export type ReferenceProblem =
  | { readonly kind: 'empty' }
  | { readonly kind: 'image-id' }
  | { readonly kind: 'uppercase' }
  | { readonly kind: 'digest'; readonly digest: string }
  | { readonly kind: 'tag'; readonly tag: string }
  | { readonly kind: 'domain'; readonly domain: string }
  | { readonly kind: 'no-path' }
  | { readonly kind: 'path'; readonly path: string };

export type SplitResult = { readonly ok: true; readonly parts: ReferenceParts } | { readonly ok: false; readonly problem: ReferenceProblem };

/** host[:port]: dot-separated DNS labels or a bracketed IPv6 literal, and an optional numeric port. */
export function isValidDomain(domain: string): boolean {
  let host: string;
  let port: string | undefined;
  if (domain.startsWith('[')) {
    const close = domain.indexOf(']');
    if (close < 0) return false;
    host = domain.slice(0, close + 1);
    const rest = domain.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return false;
      port = rest.slice(1);
    }
    if (!IPV6_LITERAL.test(host)) return false;
  } else {
    const colon = domain.indexOf(':');
    host = colon < 0 ? domain : domain.slice(0, colon);
    port = colon < 0 ? undefined : domain.slice(colon + 1);
    if (!host.split('.').every(isDnsLabel)) return false;
  }
  return port === undefined || PORT.test(port);
}

function isDnsLabel(label: string): boolean {
  return LABEL_CHARS.test(label) && !label.startsWith('-') && !label.endsWith('-');
}

/** One path component: lower-case alphanumeric runs joined by ".", "_", "__" or any number of "-". */
function isValidPathComponent(component: string): boolean {
  if (!PATH_COMPONENT_CHARS.test(component)) return false;
  if (!ALNUM.test(component.charAt(0)) || !ALNUM.test(component.charAt(component.length - 1))) return false;
  for (const run of component.matchAll(SEPARATOR_RUN)) {
    const s = run[0];
    if (s !== '.' && s !== '_' && s !== '__' && !DASHES.test(s)) return false;
  }
  return true;
}

/** A repository path below the domain: "/"-separated components. */
function isValidPath(path: string): boolean {
  return path.split('/').every(isValidPathComponent);
}

function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/** The digest syntax the reference grammar accepts; the algorithm and length are checked by parseDigest. */
function isDigestSyntax(digest: string): boolean {
  const colon = digest.indexOf(':');
  if (colon < 0) return false;
  return digest.slice(0, colon).split(ALGORITHM_SEPARATOR).every((part) => ALGORITHM_PART.test(part)) && DIGEST_HEX.test(digest.slice(colon + 1));
}

function isImageId(input: string): boolean {
  return IMAGE_ID.test(input);
}

/**
 * Whether the first "/"-separated component of a name is a registry: it is when it contains
 * "." or ":" or is "localhost"; otherwise the name is short (docker.io, or a short-name search).
 */
function looksLikeDomain(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/** Splits "domain/remainder" when the part before the first "/" looks like a registry. */
function splitDomain(name: string): { domain: string | undefined; remainder: string } {
  // IPv6 literals hold ":" but never "/", so the first slash ends the domain in every case.
  const slash = name.indexOf('/');
  if (slash < 0 || !looksLikeDomain(name.slice(0, slash))) return { domain: undefined, remainder: name };
  return { domain: name.slice(0, slash), remainder: name.slice(slash + 1) };
}

/**
 * Splits and checks a reference. The first problem found is reported, in this order: empty,
 * image ID, upper case in the path, digest, tag, domain, missing path, path.
 */
export function splitReference(input: string): SplitResult {
  const fail = (problem: ReferenceProblem): SplitResult => ({ ok: false, problem });
  if (input === '') return fail({ kind: 'empty' });
  if (isImageId(input)) return fail({ kind: 'image-id' });

  // No part before a digest may contain "@", so the first one starts it.
  const at = input.indexOf('@');
  const digest = at < 0 ? undefined : input.slice(at + 1);
  const { domain, remainder } = splitDomain(at < 0 ? input : input.slice(0, at));
  // Paths never contain ":", so the first one starts the tag.
  const colon = remainder.indexOf(':');
  const path = colon < 0 ? remainder : remainder.slice(0, colon);
  const tag = colon < 0 ? undefined : remainder.slice(colon + 1);

  if (path.toLowerCase() !== path) return fail({ kind: 'uppercase' });
  if (digest !== undefined && !isDigestSyntax(digest)) return fail({ kind: 'digest', digest });
  if (tag !== undefined && !isValidTag(tag)) return fail({ kind: 'tag', tag });
  if (domain !== undefined && !isValidDomain(domain)) return fail({ kind: 'domain', domain });
  if (path === '') return fail({ kind: 'no-path' });
  if (!isValidPath(path)) return fail({ kind: 'path', path });
  return { ok: true, parts: { domain, path, tag, digest } };
}
