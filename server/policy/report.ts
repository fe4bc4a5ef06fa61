/**
 * What an image's signatures say and whether the host policy accepts each one, for
 * GetSignatures (protocol 1.0) and `layerpipe inspect`. A signature is verified when a
 * signedBy (simple signing) or sigstoreSigned (sigstore) requirement of the scope that applies
 * to the image accepts it on its own, checked by the same code enforcement runs (evaluate.ts,
 * sigstore/requirement.ts). What a signature claims is read without trusting it, for display.
 */
import type { SignatureInfo } from '../../protocol/jsonrpc';
import { SIGSTORE_SIGNATURE_MEDIA_TYPE, type ImageSignature } from '../image/signatures';
import type { UnparsedImage } from '../image/unparsed';
import { acceptanceRules, signedByKeys, simpleSignatureRefusal } from './evaluate';
import { requirementsFor } from './scopes';
import { readUnverifiedSimpleSignature, SignatureRejected } from './simple-signing';
import { certificatesFromPem, KeyMaterialError } from './sigstore/keys';
import { parseSigstorePayload } from './sigstore/payload';
import { ANNOTATION, prepareTrust, verifySigstoreSignature } from './sigstore/requirement';
import type { Policy, Requirement } from './types';

type SigstoreSignature = Extract<ImageSignature, { format: 'sigstore-json' }>;

/** One requirement of the scope, ready to judge signatures of its kind. */
type Checker =
  | { readonly label: string; readonly format: 'simple-signing'; check(blob: Buffer): Promise<string | undefined> }
  | { readonly label: string; readonly format: 'sigstore-json'; check(sig: SigstoreSignature): string | undefined };

async function checkerFor(req: Requirement, label: string, image: UnparsedImage): Promise<Checker | undefined> {
  if (req.type === 'signedBy') {
    const trusted = await signedByKeys(req);
    const rules = acceptanceRules(req.signedIdentity, image);
    return {
      label, format: 'simple-signing',
      check: async (blob) => ('refusal' in trusted ? trusted.refusal : simpleSignatureRefusal(blob, trusted.keys, rules)),
    };
  }
  if (req.type === 'sigstoreSigned') {
    let prepared: Awaited<ReturnType<typeof prepareTrust>> | undefined;
    let unusable = '';
    try {
      prepared = await prepareTrust(req.trust);
    } catch (err) {
      if (!(err instanceof KeyMaterialError)) throw err;
      unusable = err.message;
    }
    const rules = acceptanceRules(req.signedIdentity, image);
    return {
      label, format: 'sigstore-json',
      check: (sig) => {
        if (sig.mimeType !== SIGSTORE_SIGNATURE_MEDIA_TYPE) return `not a signature: a sigstore attachment of type ${JSON.stringify(sig.mimeType)}`;
        if (prepared === undefined) return unusable;
        try {
          verifySigstoreSignature(prepared, sig, rules);
          return undefined;
        } catch (err) {
          if (err instanceof SignatureRejected) return err.message;
          throw err;
        }
      },
    };
  }
  return undefined;
}

/** The e-mail (else URI) a Fulcio certificate was issued for, read without verifying it. */
function certificateSubjectOf(pem: string | undefined): string | undefined {
  if (pem === undefined) return undefined;
  try {
    const [leaf] = certificatesFromPem(Buffer.from(pem, 'utf8'), 'signature certificate');
    if (leaf === undefined) return undefined;
    return leaf.emailAddresses[0] ?? /(?:^|, )URI:([^,]+)/.exec(leaf.x509.subjectAltName ?? '')?.[1];
  } catch {
    // An unreadable certificate names no one.
    return undefined;
  }
}

function sigstoreIdentity(sig: SigstoreSignature): string | null {
  try {
    return parseSigstorePayload(sig.payload).dockerReference;
  } catch (err) {
    if (err instanceof SignatureRejected) return null;
    throw err;
  }
}

/** Why no checker of the scope accepts `sig`, or undefined when one does. */
async function refusalOf(sig: ImageSignature, checkers: readonly Checker[], scope: string): Promise<string | undefined> {
  const reasons: { readonly label: string; readonly why: string }[] = [];
  for (const c of checkers) {
    let why: string | undefined;
    if (c.format === 'simple-signing' && sig.format === 'simple-signing') why = await c.check(sig.blob);
    else if (c.format === 'sigstore-json' && sig.format === 'sigstore-json') why = c.check(sig);
    else continue;
    if (why === undefined) return undefined;
    reasons.push({ label: c.label, why });
  }
  if (reasons.length === 0) return `not checked: the policy for this image (scope ${scope}) has no ${sig.format === 'simple-signing' ? 'signedBy' : 'sigstoreSigned'} requirement`;
  // With one requirement of the kind, its reason as it stands.
  return reasons.length === 1 ? reasons[0]!.why : reasons.map((r) => `${r.label}: ${r.why}`).join('; ');
}

/** Every signature of `image` with what it claims and the policy's verdict on it, in stored order. */
export async function describeSignatures(policy: Policy, image: UnparsedImage): Promise<SignatureInfo[]> {
  const signatures = await image.signatures();
  if (signatures.length === 0) return [];
  const { requirements, scope } = requirementsFor(policy.transports, policy.default, image.reference);
  const checkers: Checker[] = [];
  for (const [i, req] of requirements.entries()) {
    const checker = await checkerFor(req, `requirement ${i + 1} (${req.type})`, image);
    if (checker !== undefined) checkers.push(checker);
  }
  const out: SignatureInfo[] = [];
  for (const sig of signatures) {
    const reason = await refusalOf(sig, checkers, scope);
    const verdict = reason === undefined ? { verified: true } : { verified: false, reason };
    if (sig.format === 'simple-signing') {
      const claims = await readUnverifiedSimpleSignature(sig.blob);
      out.push({ format: 'simple-signing', identity: claims.dockerReference, ...(claims.keyId === undefined ? {} : { keyId: claims.keyId }), ...verdict });
    } else {
      const subject = certificateSubjectOf(sig.annotations.get(ANNOTATION.certificate));
      out.push({ format: 'sigstore', identity: sigstoreIdentity(sig), ...(subject === undefined ? {} : { certificateSubject: subject }), ...verdict });
    }
  }
  return out;
}
