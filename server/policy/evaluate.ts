/**
 * Deciding whether an image may be used: the requirements of the most specific scope that
 * names it (scopes.ts) must all accept it; a signedBy or sigstoreSigned requirement accepts
 * when at least one of the image's signatures of its kind passes. Runs on the UnparsedImage,
 * before anything of the image is resolved or served. Refusals are PolicyDeniedError with
 * containers/image's reasons.
 */
import { PolicyDeniedError } from '../../protocol/errors';
import type { ImageSignature } from '../image/signatures';
import type { UnparsedImage } from '../image/unparsed';
import type { Logger } from '../log';
import { identityMatches } from './identity';
import { KeyringError, loadKeys } from './keyring';
import { requirementsFor } from './scopes';
import { SignatureRejected, verifySimpleSignature } from './simple-signing';
import { sigstoreSignedRefusal } from './sigstore/requirement';
import type { Policy, Requirement } from './types';

/** The image's signatures, fetched at most once however many requirements need them. */
class SignatureCache {
  private pending: Promise<ImageSignature[]> | undefined;
  constructor(private readonly image: UnparsedImage, private readonly signal: AbortSignal) {}
  get(): Promise<ImageSignature[]> {
    this.pending ??= this.image.signatures(this.signal);
    return this.pending;
  }
}

/** Why `req` refuses the image, or undefined when it accepts it. */
async function refusal(req: Requirement, image: UnparsedImage, sigs: SignatureCache): Promise<string | undefined> {
  switch (req.type) {
    case 'insecureAcceptAnything':
      return undefined;
    case 'reject':
      return `Running image ${image.reference.toString()} is rejected by policy.`;
    case 'signedBaseLayer':
      return 'signedBaseLayer not implemented yet!';
    case 'sigstoreSigned':
      return sigstoreSignedRefusal(req.trust, await sigs.get(), {
        manifest: image.manifest.bytes,
        identityAccepted: (signed) => identityMatches(req.signedIdentity, image.reference.dockerReference, signed),
      });
    case 'signedBy':
      // Only simple-signing signatures count here, as containers/image's Signatures() returns only those.
      return signedByRefusal(req, image, (await sigs.get()).flatMap((s) => (s.format === 'simple-signing' ? [s.blob] : [])));
  }
}

async function signedByRefusal(req: Extract<Requirement, { type: 'signedBy' }>, image: UnparsedImage, signatures: Buffer[]): Promise<string | undefined> {
  if (req.keyType !== 'GPGKeys') return `Unimplemented "keyType" value ${JSON.stringify(req.keyType)}`;
  if (signatures.length === 0) return 'A signature was required, but no signature exists';
  let keys;
  try {
    keys = await loadKeys(req.keys);
  } catch (err) {
    if (err instanceof KeyringError) return err.message;
    throw err;
  }
  if (keys.length === 0) return 'No public keys imported';
  const dockerReference = image.reference.dockerReference;
  const rules = {
    manifest: image.manifest.bytes,
    identityAccepted: (signed: string) => identityMatches(req.signedIdentity, dockerReference, signed),
  };
  const reasons: string[] = [];
  for (const blob of signatures) {
    try {
      await verifySimpleSignature(blob, keys, rules);
      return undefined;
    } catch (err) {
      if (!(err instanceof SignatureRejected)) throw err;
      reasons.push(err.message);
    }
  }
  return reasons.length === 1 ? reasons[0] : `None of the signatures were accepted, reasons: ${reasons.join('; ')}`;
}

/**
 * Throws PolicyDeniedError unless `policy` accepts `image`. Errors reading signatures (a
 * lookaside server that does not answer) are thrown as they are: they are no verdict.
 */
export async function checkImagePolicy(policy: Policy, image: UnparsedImage, log: Logger, signal: AbortSignal): Promise<void> {
  const { requirements, scope } = requirementsFor(policy.transports, policy.default, image.reference);
  log.debug(`policy for ${image.reference.toString()}: ${scope} (${requirements.map((r) => r.type).join(', ')})`);
  const sigs = new SignatureCache(image, signal);
  for (const req of requirements) {
    const why = await refusal(req, image, sigs);
    if (why !== undefined) throw new PolicyDeniedError(why);
  }
}
