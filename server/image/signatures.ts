/**
 * The signatures of one image, whatever stores them (dir: signature-N files, a lookaside
 * directory or web server, sigstore attachments in the registry), and the bounds on them: a
 * signature is a few KiB, so anything near these is hostile or broken, and is refused with a
 * clear error instead of being read into memory.
 */
import { UnsafeContentError } from '../../protocol/errors';

export const MAX_SIGNATURE_SIZE = 4 * 1024 * 1024;
export const MAX_SIGNATURES = 128;
/** All signatures of one image together; far above any real set, far below MAX_SIGNATURES × MAX_SIGNATURE_SIZE. */
export const MAX_SIGNATURES_TOTAL_SIZE = 32 * 1024 * 1024;

/** The media type of a sigstore attachment that is a signature (not an attestation or SBOM). */
export const SIGSTORE_SIGNATURE_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';

/**
 * One signature, untrusted, as it was stored: a simple-signing blob (containers-signature(5)),
 * or a sigstore payload with the annotations that carry its signature, certificate and SET.
 * The format names are containers/image's.
 */
export type ImageSignature =
  | { readonly format: 'simple-signing'; readonly blob: Buffer }
  | { readonly format: 'sigstore-json'; readonly mimeType: string; readonly payload: Buffer; readonly annotations: ReadonlyMap<string, string> };

export function simpleSigning(blob: Buffer): ImageSignature {
  return { format: 'simple-signing', blob };
}

/** Bytes of a signature, for the total bound. */
export function signatureSize(sig: ImageSignature): number {
  if (sig.format === 'simple-signing') return sig.blob.length;
  let size = sig.payload.length;
  for (const [k, v] of sig.annotations) size += k.length + v.length;
  return size;
}

/** Throws UnsafeContentError when `sigs` are more, or larger together, than one image may have. */
export function checkSignatureBounds(where: string, sigs: readonly ImageSignature[]): void {
  if (sigs.length > MAX_SIGNATURES) throw new UnsafeContentError(`${where}: more than ${MAX_SIGNATURES} signatures`);
  const total = sigs.reduce((n, s) => n + signatureSize(s), 0);
  if (total > MAX_SIGNATURES_TOTAL_SIZE) throw new UnsafeContentError(`${where}: signatures larger than ${MAX_SIGNATURES_TOTAL_SIZE} bytes together`);
}

/**
 * Reads signature 1, 2, … with `readOne` until it answers undefined (the first missing index
 * ends the list, as containers-signature(5) stores them), refusing more than MAX_SIGNATURES
 * and more than MAX_SIGNATURES_TOTAL_SIZE bytes.
 */
export async function readNumberedSignatures(where: string, readOne: (index: number) => Promise<Buffer | undefined>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let total = 0;
  for (let index = 1; ; index++) {
    const sig = await readOne(index);
    if (sig === undefined) return out;
    if (index > MAX_SIGNATURES) throw new UnsafeContentError(`${where}: more than ${MAX_SIGNATURES} signatures`);
    total += sig.length;
    if (total > MAX_SIGNATURES_TOTAL_SIZE) throw new UnsafeContentError(`${where}: signatures larger than ${MAX_SIGNATURES_TOTAL_SIZE} bytes together`);
    out.push(sig);
  }
}

export function tooLargeSignature(where: string): UnsafeContentError {
  return new UnsafeContentError(`${where}: a signature larger than ${MAX_SIGNATURE_SIZE} bytes`);
}

/**
 * A signature as dir: stores it: an OpenPGP blob as it is, or a zero byte, a format name and a
 * newline before the format's own encoding (containers/image's layout; sigstore signatures are
 * JSON {mimeType, payload (base64), annotations}). Anything else is treated as a simple-signing
 * blob, which verification then refuses with its reason.
 */
export function signatureFromStoredBlob(blob: Buffer, where: string): ImageSignature {
  if (blob.length === 0 || blob[0] !== 0) return simpleSigning(blob);
  const newline = blob.indexOf(0x0a);
  if (newline < 0) throw new UnsafeContentError(`${where}: invalid signature format, missing newline`);
  const format = blob.subarray(1, newline).toString('latin1');
  if (!/^[\x20-\x7e]*$/.test(format)) throw new UnsafeContentError(`${where}: invalid signature format, non-ASCII byte`);
  const chunk = blob.subarray(newline + 1);
  if (format === 'simple-signing') return simpleSigning(chunk);
  if (format !== 'sigstore-json') throw new UnsafeContentError(`${where}: unrecognized signature format ${JSON.stringify(format)}`);
  let doc: unknown;
  try {
    doc = JSON.parse(chunk.toString('utf8'));
  } catch (err) {
    throw new UnsafeContentError(`${where}: sigstore signature: ${(err as Error).message}`);
  }
  const o = (typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? doc : {}) as Record<string, unknown>;
  const annotations = new Map<string, string>();
  const rawAnnotations = o.annotations ?? {};
  if (typeof rawAnnotations !== 'object' || rawAnnotations === null || Array.isArray(rawAnnotations)) throw new UnsafeContentError(`${where}: sigstore signature: annotations are not an object`);
  for (const [k, v] of Object.entries(rawAnnotations)) {
    if (typeof v !== 'string') throw new UnsafeContentError(`${where}: sigstore signature: annotation ${JSON.stringify(k)} is not a string`);
    annotations.set(k, v);
  }
  const mimeType = o.mimeType ?? '';
  const payload = o.payload ?? '';
  if (typeof mimeType !== 'string' || typeof payload !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(payload)) {
    throw new UnsafeContentError(`${where}: sigstore signature: "mimeType" or "payload" is malformed`);
  }
  return { format: 'sigstore-json', mimeType, payload: Buffer.from(payload, 'base64'), annotations };
}
