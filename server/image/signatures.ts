/**
 * Bounds on the signatures of one image, whatever stores them (dir: signature-N files, a
 * lookaside directory or web server): a signature is a few KiB, so anything near these is
 * hostile or broken, and is refused with a clear error instead of being read into memory.
 */
import { UnsafeContentError } from '../../protocol/errors';

export const MAX_SIGNATURE_SIZE = 4 * 1024 * 1024;
export const MAX_SIGNATURES = 128;

/**
 * Reads signature 1, 2, … with `readOne` until it answers undefined (the first missing index
 * ends the list, as containers-signature(5) stores them), refusing more than MAX_SIGNATURES.
 */
export async function readNumberedSignatures(where: string, readOne: (index: number) => Promise<Buffer | undefined>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let index = 1; ; index++) {
    const sig = await readOne(index);
    if (sig === undefined) return out;
    if (index > MAX_SIGNATURES) throw new UnsafeContentError(`${where}: more than ${MAX_SIGNATURES} signatures`);
    out.push(sig);
  }
}

export function tooLargeSignature(where: string): UnsafeContentError {
  return new UnsafeContentError(`${where}: a signature larger than ${MAX_SIGNATURE_SIZE} bytes`);
}
