/**
 * Which scopes a transport section of containers-policy.json(5) may name, checked when the
 * policy is loaded as containers/image checks them, and which section applies to an image.
 *
 * containers/image's loader answers an invalid scope with the same words as an unknown key
 * ("Unknown key "rel""), since it refuses the key before looking at its value; the same
 * wording is kept so messages match skopeo's. docker: scopes are not checked there (any
 * string is accepted and simply never matches), and neither are transports it does not know.
 */
import path from 'node:path';
import type { ImageReference } from '../image/types';

/** Why `scope` is not valid for `transport`, or undefined when it is ("" is always valid). */
export function scopeProblem(transport: string, scope: string): string | undefined {
  if (scope === '') return undefined;
  switch (transport) {
    case 'dir':
    case 'oci':
    case 'oci-archive':
      // An absolute, cleaned path other than "/" ("" says the same as "/").
      if (!scope.startsWith('/')) return `${transport}: scope ${JSON.stringify(scope)} is not an absolute path`;
      if (scope === '/') return `${transport}: scope "/" is not allowed, use "" to cover everything`;
      if (path.posix.normalize(scope) !== scope || scope.endsWith('/')) return `${transport}: scope ${JSON.stringify(scope)} is not in canonical form`;
      return undefined;
    case 'docker-archive':
      return 'docker-archive: does not support any scopes except the default "" one';
    default:
      return undefined;
  }
}

/** The scopes tried for `ref` in its transport's section, in order: identity, namespaces, then "". */
export function scopesFor(ref: ImageReference): string[] {
  const identity = ref.policyIdentity();
  const out = identity === '' ? [] : [identity];
  out.push(...ref.policyNamespaces(), '');
  return out;
}

/**
 * The requirements that apply to `ref`: the first scope of its transport's section that the
 * policy names, else the global default.
 */
export function requirementsFor<T>(
  transports: ReadonlyMap<string, ReadonlyMap<string, T>>,
  fallback: T,
  ref: ImageReference,
): { readonly requirements: T; readonly scope: string } {
  const section = transports.get(ref.transport.name);
  if (section !== undefined) {
    for (const scope of scopesFor(ref)) {
      const found = section.get(scope);
      if (found !== undefined) return { requirements: found, scope: `${ref.transport.name}:${scope}` };
    }
  }
  return { requirements: fallback, scope: 'default' };
}
