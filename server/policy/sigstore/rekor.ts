/**
 * Rekor signed entry timestamps (the "dev.sigstore.cosign/bundle" annotation): a Rekor key's
 * ECDSA signature over the canonical JSON (RFC 8785) of {body, integratedTime, logIndex,
 * logID}, where body is the log entry, a hashedrekord 0.0.1 naming the signature, the signing
 * key or certificate and the payload's SHA-256. Verified as containers/image verifies it:
 * signature first, then the verified canonical bytes are read, then every field must match.
 */
import { createHash, verify, type KeyObject } from 'node:crypto';
import { exactMembers, JsonObject, parseStrictJson, strictMembers, type JsonValue } from '../strict-json';
import { SignatureRejected } from '../simple-signing';
import { decodePem } from './keys';

function invalid(message: string): never {
  throw new SignatureRejected(message);
}

/** Standard base64 as Go decodes []byte fields and DecodeString: padding required, newlines ignored. */
export function decodeBase64(text: string, what: string): Buffer {
  const s = text.replace(/[\r\n]/g, '');
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) invalid(`${what}: illegal base64 data`);
  return Buffer.from(s, 'base64');
}

/** RFC 8785 canonical JSON: members sorted by UTF-16 code units, ECMAScript number and string forms. */
export function canonicalJson(v: JsonValue): string {
  if (v instanceof JsonObject) {
    const members = strictMembers(v, 'a JSON object', () => true, invalid);
    const keys = [...members.keys()].sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(members.get(k)!)}`).join(',')}}`;
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  return JSON.stringify(v);
}

function parse(text: string, what: string): JsonValue {
  try {
    return parseStrictJson(text);
  } catch (err) {
    return invalid(`${what}: ${(err as Error).message}`);
  }
}

/** Members of an object where unknown keys are ignored, as Go's json.Unmarshal into a struct does. */
function looseMembers(v: JsonValue | undefined, what: string): Map<string, JsonValue> {
  if (v === undefined || v === null) return new Map();
  return strictMembers(v, what, () => true, (m) => invalid(`${what}: ${m}`));
}

function stringOrUndefined(v: JsonValue | undefined, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') invalid(`${what} is not a string`);
  return v;
}

function integer(v: JsonValue | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) invalid(`${what} is not an integer`);
  return v;
}

/** What a SET must match: the signature's base64, its payload, and the PEM of the key or certificate that made it. */
export interface SetSubject {
  readonly keyOrCertificatePem: Buffer;
  readonly base64Signature: string;
  readonly payload: Buffer;
}

/** Verifies a SET with one of `rekorKeys`; its integratedTime (seconds since the epoch), or SignatureRejected. */
export function verifyRekorSet(rekorKeys: readonly KeyObject[], setText: string, subject: SetSubject): number {
  const set = exactMembers(parse(setText, 'Rekor SET'), 'the Rekor SET', ['SignedEntryTimestamp', 'Payload'], invalid);
  const sigText = set.get('SignedEntryTimestamp');
  const sig = sigText === null ? Buffer.alloc(0) : decodeBase64(typeof sigText === 'string' ? sigText : invalid('SignedEntryTimestamp is not a string'), 'SignedEntryTimestamp');
  const canonical = Buffer.from(canonicalJson(set.get('Payload')!), 'utf8');
  const accepted = rekorKeys.some((key) => {
    try {
      return verify('sha256', canonical, { key, dsaEncoding: 'der' }, sig);
    } catch {
      return false;
    }
  });
  if (!accepted) invalid('cryptographic signature verification of Rekor SET failed');

  // Only the verified canonical bytes are read from here on.
  const payload = exactMembers(parse(canonical.toString('utf8'), 'parsing Rekor SET payload'), 'the Rekor SET payload', ['body', 'integratedTime', 'logIndex', 'logID'], (m) => invalid(`parsing Rekor SET payload: ${m}`));
  const integratedTime = integer(payload.get('integratedTime'), 'integratedTime');
  integer(payload.get('logIndex'), 'logIndex');
  if (typeof payload.get('logID') !== 'string') invalid('logID is not a string');
  const bodyText = payload.get('body');
  if (typeof bodyText !== 'string') invalid('decoding the body of a Rekor SET payload: body is not a string');
  const body = looseMembers(parse(decodeBase64(bodyText, 'decoding the body of a Rekor SET payload').toString('utf8'), 'decoding the body of a Rekor SET payload'), 'the Rekor SET body');
  const kind = stringOrUndefined(body.get('kind'), 'kind') ?? '';
  if (kind !== 'hashedrekord') invalid(`decoding the body of a Rekor SET payload: invalid kind value: ${JSON.stringify(kind)}`);
  const apiVersion = stringOrUndefined(body.get('apiVersion'), 'apiVersion');
  if (apiVersion === undefined) invalid('missing Rekor SET Payload API version');
  if (apiVersion !== '0.0.1') invalid(`unsupported Rekor SET Payload hashedrekord version ${JSON.stringify(apiVersion)}`);
  const spec = looseMembers(body.get('spec'), 'hashedrekord spec');

  const signature = spec.get('signature');
  if (signature === undefined || signature === null) invalid('Missing "signature" field in hashedrekord');
  const sigMembers = looseMembers(signature, 'hashedrekord signature');
  const publicKey = sigMembers.get('publicKey');
  if (publicKey === undefined || publicKey === null) invalid('Missing "signature.publicKey" field in hashedrekord');
  const keyContent = stringOrUndefined(looseMembers(publicKey, 'hashedrekord publicKey').get('content'), 'signature.publicKey.content');
  const rekorPem = decodePem(keyContent === undefined ? Buffer.alloc(0) : decodeBase64(keyContent, 'signature.publicKey.content'));
  if (rekorPem === undefined) invalid('publicKey in Rekor SET is not in PEM format');
  if (rekorPem.rest.length !== 0) invalid('publicKey in Rekor SET has trailing data');
  const ourPem = decodePem(subject.keyOrCertificatePem);
  if (ourPem === undefined) invalid('public key or cert to be matched against publicKey in Rekor SET is not in PEM format');
  if (ourPem.rest.length !== 0) invalid('public key or cert to be matched against publicKey in Rekor SET has trailing data');
  if (!rekorPem.bytes.equals(ourPem.bytes)) invalid('publicKey in Rekor SET does not match');

  const ourSignature = decodeBase64(subject.base64Signature, 'decoding signature base64');
  const contentText = stringOrUndefined(sigMembers.get('content'), 'signature.content');
  const loggedSignature = contentText === undefined ? Buffer.alloc(0) : decodeBase64(contentText, 'signature.content');
  if (!loggedSignature.equals(ourSignature)) invalid('signature in Rekor SET does not match');

  const data = spec.get('data');
  if (data === undefined || data === null) invalid('Missing "data" field in hashedrekord');
  const hash = looseMembers(data, 'hashedrekord data').get('hash');
  if (hash === undefined || hash === null) invalid('Missing "data.hash" field in hashedrekord');
  const hashMembers = looseMembers(hash, 'hashedrekord data.hash');
  const algorithm = stringOrUndefined(hashMembers.get('algorithm'), 'data.hash.algorithm');
  if (algorithm === undefined) invalid('Missing "data.hash.algorithm" field in hashedrekord');
  if (algorithm !== 'sha256') invalid(`Unexpected "data.hash.algorithm" value ${JSON.stringify(algorithm)}`);
  const value = stringOrUndefined(hashMembers.get('value'), 'data.hash.value');
  if (value === undefined) invalid('Missing "data.hash.value" field in hashedrekord');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(value)) invalid('Invalid "data.hash.value" field in hashedrekord: not hexadecimal');
  if (!Buffer.from(value, 'hex').equals(createHash('sha256').update(subject.payload).digest())) invalid('payload in Rekor SET does not match');
  return integratedTime;
}
