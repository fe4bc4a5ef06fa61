/**
 * The sigstoreSigned requirement: accepted when one of the image's sigstore signatures (of
 * the signature media type) verifies, in containers/image's order: the signature annotation,
 * then the signer — a policy key (with its Rekor SET when Rekor keys are given), or a Fulcio
 * certificate valid when Rekor logged it — then the payload's signature, then its critical
 * section against the manifest and the policy's signedIdentity. Reasons use that library's
 * words; key material that cannot be read is a rejection with its reason, like the keyrings.
 */
import type { KeyObject } from 'node:crypto';
import { verifyBytes } from '../../image/digest';
import { SIGSTORE_SIGNATURE_MEDIA_TYPE, type ImageSignature } from '../../image/signatures';
import { SignatureRejected } from '../simple-signing';
import type { PemSource, SigstoreTrust } from '../types';
import { verifyFulcioCertificate, type FulcioRoots } from './fulcio';
import { caCertificatesFromPem, KeyMaterialError, loadPublicKeys, readPemSource, verifyWithKey } from './keys';
import { parseSigstorePayload } from './payload';
import { decodeBase64, verifyRekorSet } from './rekor';

export const ANNOTATION = {
  signature: 'dev.cosignproject.cosign/signature',
  bundle: 'dev.sigstore.cosign/bundle',
  certificate: 'dev.sigstore.cosign/certificate',
  chain: 'dev.sigstore.cosign/chain',
} as const;

type SigstoreSignature = Extract<ImageSignature, { format: 'sigstore-json' }>;

/** The policy's trust, read and parsed once per evaluation. */
type PreparedTrust =
  | { readonly kind: 'keys'; readonly keys: readonly KeyObject[]; readonly rekorKeys: readonly KeyObject[] | undefined }
  | { readonly kind: 'fulcio'; readonly roots: FulcioRoots; readonly rekorKeys: readonly KeyObject[] };

/** What the payload's claims are checked against. */
export interface SigstoreAcceptanceRules {
  readonly manifest: Buffer;
  /** Whether the claimed docker reference is acceptable under the requirement's signedIdentity. */
  readonly identityAccepted: (dockerReference: string) => boolean;
}

async function rekorKeysOf(source: PemSource): Promise<KeyObject[]> {
  const keys = await loadPublicKeys(source, 'Rekor public key');
  keys.forEach((k, i) => {
    if (k.asymmetricKeyType !== 'ec') throw new KeyMaterialError(`Rekor public key ${i + 1} is not using ECDSA`);
  });
  return keys;
}

/** Reads the key material of a requirement; KeyMaterialError when it cannot be used. */
export async function prepareTrust(trust: SigstoreTrust): Promise<PreparedTrust> {
  switch (trust.kind) {
    case 'keys':
      return {
        kind: 'keys',
        keys: await loadPublicKeys(trust.keys, 'public key'),
        rekorKeys: trust.rekorKeys === undefined ? undefined : await rekorKeysOf(trust.rekorKeys),
      };
    case 'fulcio': {
      const [caPem] = await readPemSource(trust.fulcio.ca);
      const cas = caCertificatesFromPem(caPem!);
      if (cas.length === 0) throw new KeyMaterialError('error loading Fulcio CA certificates');
      const roots = { cas, oidcIssuer: trust.fulcio.oidcIssuer, subjectEmail: trust.fulcio.subjectEmail };
      return { kind: 'fulcio', roots, rekorKeys: await rekorKeysOf(trust.rekorKeys) };
    }
    case 'pki':
      throw new KeyMaterialError('sigstoreSigned with "pki" is not supported by layerpipe');
  }
}

function annotation(sig: SigstoreSignature, key: string): string {
  const v = sig.annotations.get(key);
  if (v === undefined) throw new SignatureRejected(`missing ${key} annotation`);
  return v;
}

/** The key re-encoded (SubjectPublicKeyInfo PEM), as containers/image compares it with the SET's. */
const pemOf = (key: KeyObject): Buffer => Buffer.from(key.export({ type: 'spki', format: 'pem' }));

/** The keys that may have signed `sig`, after its Rekor and certificate checks. */
function signersOf(trust: PreparedTrust, sig: SigstoreSignature, base64Signature: string): readonly KeyObject[] {
  if (trust.kind === 'fulcio') {
    const set = annotation(sig, ANNOTATION.bundle);
    const certificate = annotation(sig, ANNOTATION.certificate);
    const loggedAt = verifyRekorSet(trust.rekorKeys, set, { keyOrCertificatePem: Buffer.from(certificate, 'utf8'), base64Signature, payload: sig.payload });
    return [verifyFulcioCertificate(trust.roots, certificate, sig.annotations.get(ANNOTATION.chain), loggedAt)];
  }
  if (trust.rekorKeys === undefined) return trust.keys;
  const set = annotation(sig, ANNOTATION.bundle);
  const failures: string[] = [];
  for (const key of trust.keys) {
    try {
      verifyRekorSet(trust.rekorKeys, set, { keyOrCertificatePem: pemOf(key), base64Signature, payload: sig.payload });
      // A SET names one key: the others either do not match or are the same key.
      return [key];
    } catch (err) {
      if (!(err instanceof SignatureRejected)) throw err;
      failures.push(err.message);
    }
  }
  throw new SignatureRejected(`No public key verified against the RekorSET: ${failures.join(', ')}`);
}

/** What sigstore's verifier for the key's type says when a signature does not verify. */
function verificationFailure(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'ec': return 'invalid signature when validating ASN.1 encoded signature';
    case 'rsa': return 'crypto/rsa: verification error';
    default: return 'failed to verify signature';
  }
}

/** Checks one sigstore signature; SignatureRejected with the reason unless it is accepted. */
export function verifySigstoreSignature(trust: PreparedTrust, sig: SigstoreSignature, rules: SigstoreAcceptanceRules): void {
  const base64Signature = annotation(sig, ANNOTATION.signature);
  const keys = signersOf(trust, sig, base64Signature);
  const signature = decodeBase64(base64Signature, 'base64 decoding');
  if (!keys.some((key) => verifyWithKey(key, sig.payload, signature))) {
    throw new SignatureRejected(`cryptographic signature verification failed: ${keys.map(verificationFailure).join(', ')}`);
  }
  const claims = parseSigstorePayload(sig.payload);
  try {
    verifyBytes(rules.manifest, claims.manifestDigest, 'manifest');
  } catch {
    throw new SignatureRejected(`Signature for digest ${claims.manifestDigest} does not match`);
  }
  if (!rules.identityAccepted(claims.dockerReference)) throw new SignatureRejected(`Signature for identity ${claims.dockerReference} is not accepted`);
}

/** Why a sigstoreSigned requirement refuses an image with these signatures; undefined when it accepts. */
export async function sigstoreSignedRefusal(trust: SigstoreTrust, signatures: readonly ImageSignature[], rules: SigstoreAcceptanceRules): Promise<string | undefined> {
  let nonSigstore = 0;
  let nonSignatures = 0;
  const candidates: SigstoreSignature[] = [];
  for (const sig of signatures) {
    if (sig.format !== 'sigstore-json') nonSigstore++;
    else if (sig.mimeType !== SIGSTORE_SIGNATURE_MEDIA_TYPE) nonSignatures++;
    else candidates.push(sig);
  }
  if (candidates.length === 0) {
    if (nonSigstore === 0 && nonSignatures === 0) return 'A signature was required, but no signature exists';
    return `A signature was required, but no signature exists (${nonSigstore} non-sigstore signatures, ${nonSignatures} sigstore non-signature attachments)`;
  }
  let prepared: PreparedTrust | undefined;
  let unusable: string | undefined;
  try {
    prepared = await prepareTrust(trust);
  } catch (err) {
    if (!(err instanceof KeyMaterialError)) throw err;
    unusable = err.message;
  }
  const reasons: string[] = [];
  for (const sig of candidates) {
    if (prepared === undefined) {
      reasons.push(unusable!);
      continue;
    }
    try {
      verifySigstoreSignature(prepared, sig, rules);
      return undefined;
    } catch (err) {
      if (!(err instanceof SignatureRejected)) throw err;
      reasons.push(err.message);
    }
  }
  return reasons.length === 1 ? reasons[0] : `None of the signatures were accepted, reasons: ${reasons.join('; ')}`;
}
