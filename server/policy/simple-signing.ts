/**
 * Simple signing (containers-signature(5)): an OpenPGP signed message whose payload is a JSON
 * document naming a manifest digest and a docker reference. Checked in containers/image's
 * order: exactly one signature, made by an accepted key, then the payload's critical section
 * read strictly, then its digest against the manifest, then its identity against the policy.
 * Every failure is a rejection with a reason; hostile input never escapes as an exception.
 */
import type * as openpgp from 'openpgp';
import { openpgpModule } from './openpgp';
import { sha256Digest } from '../image/digest';
import { exactMembers, JsonObject, parseStrictJson, strictMembers, type JsonValue } from './strict-json';
import { fingerprintOf } from './keyring';

/** Why one signature is not accepted; the message is the requirement's reason. */
export class SignatureRejected extends Error {}

function reject(message: string): never {
  throw new SignatureRejected(message);
}

/** What a verified signature claims. */
export interface SignedClaims {
  readonly manifestDigest: string;
  readonly dockerReference: string;
  /** Fingerprint of the key that made the signature. */
  readonly keyFingerprint: string;
}

export interface AcceptanceRules {
  /** The manifest the signature must name (its exact bytes). */
  readonly manifest: Buffer;
  /** Whether the claimed docker reference is acceptable; the caller words the refusal. */
  readonly identityAccepted: (dockerReference: string) => boolean;
}

/**
 * The key among `keys` (a primary key or a subkey) with that key ID. Only primary keys are
 * accepted signers, as skopeo 1.9 accepts them: a signature by a subkey verifies, then is
 * refused by the subkey's fingerprint.
 */
function findSigner(keys: readonly openpgp.Key[], keyID: openpgp.KeyID): { primary: boolean; fingerprint: string } | undefined {
  for (const key of keys) {
    if (key.getKeyID().equals(keyID)) return { primary: true, fingerprint: fingerprintOf(key) };
    for (const sub of key.getSubkeys()) if (sub.getKeyID().equals(keyID)) return { primary: false, fingerprint: fingerprintOf(sub) };
  }
  return undefined;
}

/** Verifies the OpenPGP layer; the signed payload and its signer, or a rejection. */
async function verifyOpenPgp(blob: Buffer, keys: readonly openpgp.Key[]): Promise<{ payload: Buffer; fingerprint: string }> {
  let message: openpgp.Message<Uint8Array>;
  try {
    message = await openpgpModule().readMessage({ binaryMessage: new Uint8Array(blob) });
  } catch (err) {
    return reject(`Invalid GPG signature: not an OpenPGP message: ${(err as Error).message}`);
  }
  let result: openpgp.VerifyMessageResult<Uint8Array>;
  try {
    result = await openpgpModule().verify({ message, verificationKeys: [...keys], format: 'binary', expectSigned: false });
  } catch (err) {
    return reject(`Invalid GPG signature: ${(err as Error).message}`);
  }
  if (result.signatures.length !== 1) reject(`Unexpected GPG signature count ${result.signatures.length}`);
  const sig = result.signatures[0]!;
  const signer = findSigner(keys, sig.keyID);
  if (signer === undefined) {
    // Await the promise anyway, so its rejection is handled.
    await sig.verified.catch(() => undefined);
    return reject(`Invalid GPG signature: signed by key ID ${sig.keyID.toHex().toUpperCase()}, which is not among the accepted keys`);
  }
  try {
    await sig.verified;
  } catch (err) {
    return reject(`Invalid GPG signature: ${(err as Error).message}`);
  }
  if (!signer.primary) reject(`Signature by key ${signer.fingerprint} is not accepted`);
  return { payload: Buffer.from(result.data), fingerprint: signer.fingerprint };
}

function invalid(message: string): never {
  return reject(`Invalid signature: ${message}`);
}

function stringField(v: JsonValue | undefined, what: string): string {
  if (typeof v !== 'string') invalid(`${what} is not a string`);
  return v;
}

/** The payload's claims, read as strictly as containers/image reads them. */
export function parsePayload(payload: Buffer): { manifestDigest: string; dockerReference: string } {
  let doc: JsonValue;
  try {
    doc = parseStrictJson(payload.toString('utf8'));
  } catch (err) {
    return invalid((err as Error).message);
  }
  const top = exactMembers(doc, 'the signature', ['critical', 'optional'], invalid);
  const critical = exactMembers(top.get('critical')!, '"critical"', ['type', 'image', 'identity'], invalid);
  const type = stringField(critical.get('type'), '"type"');
  if (type !== 'atomic container signature') invalid(`Unrecognized signature type ${type}`);
  const image = exactMembers(critical.get('image')!, '"image"', ['docker-manifest-digest'], invalid);
  const identity = exactMembers(critical.get('identity')!, '"identity"', ['docker-reference'], invalid);
  const optional = top.get('optional')!;
  if (!(optional instanceof JsonObject)) invalid('"optional" is not a JSON object');
  const opt = strictMembers(optional, '"optional"', () => true, invalid);
  if (opt.has('creator')) stringField(opt.get('creator'), '"creator"');
  if (opt.has('timestamp') && !Number.isSafeInteger(opt.get('timestamp'))) invalid('"timestamp" is not an integer');
  return {
    manifestDigest: stringField(image.get('docker-manifest-digest'), '"docker-manifest-digest"'),
    dockerReference: stringField(identity.get('docker-reference'), '"docker-reference"'),
  };
}

/** Whether `digest` names `manifest`: sha256 only, as every signer writes. */
function digestMatches(manifest: Buffer, digest: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(digest) && sha256Digest(manifest) === digest;
}

/**
 * Checks one signature blob against accepted keys and rules; the claims when it is accepted,
 * SignatureRejected with containers/image's reason otherwise.
 */
export async function verifySimpleSignature(blob: Buffer, keys: readonly openpgp.Key[], rules: AcceptanceRules): Promise<SignedClaims> {
  const { payload, fingerprint } = await verifyOpenPgp(blob, keys);
  const claims = parsePayload(payload);
  if (!digestMatches(rules.manifest, claims.manifestDigest)) reject(`Signature for digest ${claims.manifestDigest} does not match`);
  if (!rules.identityAccepted(claims.dockerReference)) reject(`Signature for identity ${claims.dockerReference} is not accepted`);
  return { ...claims, keyFingerprint: fingerprint };
}

/** What a simple-signing blob says, read without verifying it: for reports, never for a verdict. */
export interface UnverifiedSimpleSignature {
  /** The signer's key ID as the signature names it (16 upper-case hex digits). */
  readonly keyId: string | undefined;
  /** The claimed docker reference; null when the message or its payload cannot be read. */
  readonly dockerReference: string | null;
}

export async function readUnverifiedSimpleSignature(blob: Buffer): Promise<UnverifiedSimpleSignature> {
  let message: openpgp.Message<Uint8Array>;
  try {
    message = (await openpgpModule().readMessage({ binaryMessage: new Uint8Array(blob) })).unwrapCompressed();
  } catch {
    return { keyId: undefined, dockerReference: null };
  }
  const keyId = message.getSigningKeyIDs()[0]?.toHex().toUpperCase();
  let dockerReference: string | null = null;
  try {
    const data = message.getLiteralData();
    if (data instanceof Uint8Array) dockerReference = parsePayload(Buffer.from(data)).dockerReference;
  } catch {
    // An unreadable payload claims nothing.
  }
  return { keyId, dockerReference };
}
