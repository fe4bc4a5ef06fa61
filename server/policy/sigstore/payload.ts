/**
 * The sigstore signature payload: cosign's simple-signing JSON, {"critical": {"type":
 * "cosign container image signature", "image": {"docker-manifest-digest"}, "identity":
 * {"docker-reference"}}, "optional": {…} or null}. Read as strictly as containers/image reads
 * it: exactly these critical keys, no duplicate anywhere, a digest go-digest accepts;
 * "optional" may hold anything, but "creator" must be a string and "timestamp" an integer.
 */
import { isValidDigest } from '../../image/digest';
import { SignatureRejected } from '../simple-signing';
import { exactMembers, parseStrictJson, strictMembers, type JsonValue } from '../strict-json';

export const SIGSTORE_SIGNATURE_TYPE = 'cosign container image signature';

function invalid(message: string): never {
  throw new SignatureRejected(message);
}

function stringField(v: JsonValue | undefined, what: string): string {
  if (typeof v !== 'string') invalid(`${what} is not a string`);
  return v;
}

export interface SigstoreClaims {
  readonly manifestDigest: string;
  readonly dockerReference: string;
}

export function parseSigstorePayload(payload: Buffer): SigstoreClaims {
  let doc: JsonValue;
  try {
    doc = parseStrictJson(payload.toString('utf8'));
  } catch (err) {
    return invalid((err as Error).message);
  }
  const top = exactMembers(doc, 'the payload', ['critical', 'optional'], invalid);
  const optional = top.get('optional')!;
  if (optional !== null) {
    const opt = strictMembers(optional, '"optional"', () => true, invalid);
    if (opt.has('creator')) stringField(opt.get('creator'), 'Field optional.creator');
    if (opt.has('timestamp')) {
      const t = opt.get('timestamp');
      if (typeof t !== 'number') invalid('Field optional.timestamp is not a number');
      if (!Number.isInteger(t)) invalid('Field optional.timestamp is not an integer');
    }
  }
  const critical = exactMembers(top.get('critical')!, '"critical"', ['type', 'image', 'identity'], invalid);
  const type = stringField(critical.get('type'), 'Field critical.type');
  if (type !== SIGSTORE_SIGNATURE_TYPE) invalid(`Unrecognized signature type ${type}`);
  const image = exactMembers(critical.get('image')!, '"image"', ['docker-manifest-digest'], invalid);
  const manifestDigest = stringField(image.get('docker-manifest-digest'), 'Field docker-manifest-digest');
  if (!isValidDigest(manifestDigest)) invalid(`invalid docker-manifest-digest value ${JSON.stringify(manifestDigest)}: invalid checksum digest format`);
  const identity = exactMembers(critical.get('identity')!, '"identity"', ['docker-reference'], invalid);
  return { manifestDigest, dockerReference: stringField(identity.get('docker-reference'), 'Field docker-reference') };
}
