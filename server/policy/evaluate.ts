/**
 * Deciding whether an image may be used: the requirements of the most specific scope that
 * names it (scopes.ts) must all accept it; a signedBy or sigstoreSigned requirement accepts
 * when at least one of the image's signatures of its kind passes. Runs on the UnparsedImage,
 * before anything of the image is resolved or served (open.ts turns a refusal into
 * PolicyDeniedError); reasons are containers/image's. The per-signature checks are exported
 * for report.ts, which lists every signature's verdict.
 */
import type * as openpgp from 'openpgp';
import type { UnparsedImage } from '../image/unparsed';
import type { Logger } from '../log';
import { identityMatches } from './identity';
import { KeyringError, loadKeys } from './keyring';
import { requirementsFor } from './scopes';
import { SignatureRejected, verifySimpleSignature, type AcceptanceRules } from './simple-signing';
import type { IdentityMatch, Policy, Requirement } from './types';

const NO_SIGNATURE = 'A signature was required, but no signature exists';

type SignedBy = Extract<Requirement, { type: 'signedBy' }>;

/** What a signature's claims must satisfy for `image` under a requirement's signedIdentity. */
export function acceptanceRules(identity: IdentityMatch, image: UnparsedImage): AcceptanceRules {
  const dockerReference = image.reference.dockerReference;
  return { manifest: image.manifest.bytes, identityAccepted: (signed) => identityMatches(identity, dockerReference, signed) };
}

/** The keys a signedBy requirement trusts, or why it can accept no signature at all. */
export async function signedByKeys(req: SignedBy): Promise<{ readonly keys: readonly openpgp.Key[] } | { readonly refusal: string }> {
  if (req.keyType !== 'GPGKeys') return { refusal: `Unimplemented "keyType" value ${JSON.stringify(req.keyType)}` };
  let keys: openpgp.Key[];
  try {
    keys = await loadKeys(req.keys);
  } catch (err) {
    if (err instanceof KeyringError) return { refusal: err.message };
    throw err;
  }
  return keys.length === 0 ? { refusal: 'No public keys imported' } : { keys };
}

/** Why one simple-signing signature is not accepted by `keys` under `rules`; undefined when it is. */
export async function simpleSignatureRefusal(blob: Buffer, keys: readonly openpgp.Key[], rules: AcceptanceRules): Promise<string | undefined> {
  try {
    await verifySimpleSignature(blob, keys, rules);
    return undefined;
  } catch (err) {
    if (err instanceof SignatureRejected) return err.message;
    throw err;
  }
}

/** Why `req` refuses the image, or undefined when it accepts it. */
async function refusal(req: Requirement, image: UnparsedImage): Promise<string | undefined> {
  switch (req.type) {
    case 'insecureAcceptAnything':
      return undefined;
    case 'reject':
      return `Running image ${image.reference.toString()} is rejected by policy.`;
    case 'signedBaseLayer':
      return 'signedBaseLayer not implemented yet!';
    case 'sigstoreSigned': {
      // The sigstore checks (certificates, DER, Rekor) load with the first policy that uses them.
      const { sigstoreSignedRefusal } = require('./sigstore/requirement') as typeof import('./sigstore/requirement');
      return sigstoreSignedRefusal(req.trust, await image.signatures(), acceptanceRules(req.signedIdentity, image));
    }
    case 'signedBy':
      // Only simple-signing signatures count here, as containers/image's Signatures() returns only those.
      return signedByRefusal(req, image, (await image.signatures()).flatMap((s) => (s.format === 'simple-signing' ? [s.blob] : [])));
  }
}

async function signedByRefusal(req: SignedBy, image: UnparsedImage, signatures: Buffer[]): Promise<string | undefined> {
  // An unusable keyType is reported even without signatures; keys are read only when there are some.
  if (signatures.length === 0 && req.keyType === 'GPGKeys') return NO_SIGNATURE;
  const trusted = await signedByKeys(req);
  if ('refusal' in trusted) return trusted.refusal;
  const rules = acceptanceRules(req.signedIdentity, image);
  const reasons: string[] = [];
  for (const blob of signatures) {
    const why = await simpleSignatureRefusal(blob, trusted.keys, rules);
    if (why === undefined) return undefined;
    reasons.push(why);
  }
  return reasons.length === 1 ? reasons[0] : `None of the signatures were accepted, reasons: ${reasons.join('; ')}`;
}

/** The policy's decision on one image: the scope that applied, its requirements, and why it refuses (undefined: accepted). */
export interface PolicyVerdict {
  readonly scope: string;
  readonly requirements: readonly Requirement[];
  readonly refusal: string | undefined;
}

/**
 * Evaluates `policy` for `image`: the first requirement that refuses gives the reason. Errors
 * reading signatures (a lookaside server that does not answer) are thrown as they are: they
 * are no verdict.
 */
export async function evaluatePolicy(policy: Policy, image: UnparsedImage, log: Logger): Promise<PolicyVerdict> {
  const { requirements, scope } = requirementsFor(policy.transports, policy.default, image.reference);
  log.debug(`policy for ${image.reference.toString()}: ${scope} (${requirements.map((r) => r.type).join(', ')})`);
  for (const req of requirements) {
    const why = await refusal(req, image);
    if (why !== undefined) return { scope, requirements, refusal: why };
  }
  return { scope, requirements, refusal: undefined };
}
