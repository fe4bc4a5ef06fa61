/** Where a blob's file goes in each destination layout (digests parsed strictly, so never a path escape). */
import { parseDigest } from '../image/digest';

/** The OCI layout's blob path under `root`. */
export function layoutBlobFile(root: string, digest: string): string {
  const d = parseDigest(digest);
  return `${root}/blobs/${d.algorithm}/${d.hex}`;
}

/** dir:'s blob file name: bare hex for sha256 (skopeo's convention), ALG-HEX otherwise. */
export function dirBlobFile(root: string, digest: string): string {
  const d = parseDigest(digest);
  return `${root}/${d.algorithm === 'sha256' ? d.hex : `${d.algorithm}-${d.hex}`}`;
}
