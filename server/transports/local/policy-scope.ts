/**
 * Policy scopes of references that name a local path (oci:, dir:, oci-archive:), as
 * containers/image computes them for containers-policy.json(5): the identity is the path made
 * fully explicit (absolute, cleaned, every symbolic link resolved); the namespaces are
 * directories above it, never "/" (that scope is refused in a policy: "" says the same).
 */
import { lstatSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../../../protocol/errors';

function resolveExisting(p: string): string {
  return realpathSync(path.resolve(p));
}

/**
 * The fully explicit form of `p`. Every component must exist, except that the last may be
 * missing (not a dangling symlink, which is an error as in containers/image, where such a
 * reference does not even parse). Throws InvalidArgumentError when the path cannot be resolved.
 */
export function explicitPath(p: string): string {
  try {
    try {
      lstatSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Split as Go's filepath.Split does: the parent keeps its trailing slash, so "a/b/"
      // (missing) has parent "a/b/" and fails to resolve, like in containers/image.
      const cut = p.lastIndexOf('/') + 1;
      const file = p.slice(cut);
      const parent = resolveExisting(p.slice(0, cut));
      if (file === '.' || file === '..') throw new Error(`unexpectedly missing special filename component in ${p}`);
      return path.join(parent, file);
    }
    return resolveExisting(p);
  } catch (err) {
    throw new InvalidArgumentError(`resolving ${JSON.stringify(p)} for the signature policy: ${(err as Error).message}`, { cause: err });
  }
}

/** "/a/b/c" -> ["/a/b", "/a"]: the parents, most specific first, without "/" (dir:). */
export function parentDirectories(resolved: string): string[] {
  const out: string[] = [];
  for (let dir = path.dirname(resolved); dir !== '/' && dir !== path.dirname(dir); dir = path.dirname(dir)) out.push(dir);
  return out;
}

/**
 * "/a/b/c" -> ["/a/b/c", "/a/b", "/a"]: oci: and oci-archive: list the identity itself first,
 * then its parents. Checking the identity twice changes no policy decision; the list is kept as
 * containers/image returns it.
 */
export function pathAndParents(resolved: string): string[] {
  return resolved === '/' ? [] : [resolved, ...parentDirectories(resolved)];
}

/**
 * The identity and namespaces of one local path, worked out on first use and kept, as
 * containers/image keeps the path it resolved when the reference was made.
 */
export class LocalPathScope {
  private resolved: { readonly path: string } | { readonly error: unknown } | undefined;

  constructor(
    private readonly userPath: string,
    private readonly namespacesOf: (resolved: string) => string[],
  ) {}

  identity(): string {
    this.resolved ??= (() => {
      try {
        return { path: explicitPath(this.userPath) };
      } catch (error) {
        return { error };
      }
    })();
    if ('error' in this.resolved) throw this.resolved.error;
    return this.resolved.path;
  }

  namespaces(): string[] {
    return this.namespacesOf(this.identity());
  }
}

/**
 * The policy half of a reference that names a local path (oci:, dir:, oci-archive:): no docker
 * reference, and the scopes of `scopePath`.
 */
export abstract class LocalPathReference {
  readonly dockerReference = undefined;
  private readonly scope: LocalPathScope;

  protected constructor(scopePath: string, namespacesOf: (resolved: string) => string[]) {
    this.scope = new LocalPathScope(scopePath, namespacesOf);
  }

  policyIdentity(): string {
    return this.scope.identity();
  }

  policyNamespaces(): string[] {
    return this.scope.namespaces();
  }
}
