/**
 * Policy scopes of references that name a local path (oci:, dir:, oci-archive:), as
 * containers-policy.json(5) describes them: the path made absolute with every symbolic link
 * in its existing part resolved, and as less specific scopes its parent directories up to,
 * but not including, "/".
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';

/** The absolute path with symlinks resolved as far as the path exists; a missing tail is kept as written. */
export function explicitPath(p: string): string {
  const absolute = path.resolve(p);
  let existing = absolute;
  const missing: string[] = [];
  for (;;) {
    try {
      return path.join(realpathSync(existing), ...missing.reverse());
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return absolute;
      missing.push(path.basename(existing));
      existing = parent;
    }
  }
}

/** "/a/b/c" -> ["/a/b", "/a"]: the parent directories, most specific first, without "/". */
export function parentDirectories(p: string): string[] {
  const out: string[] = [];
  for (let dir = path.dirname(p); dir !== '/' && dir !== path.dirname(dir); dir = path.dirname(dir)) out.push(dir);
  return out;
}
