/**
 * Sigstore's key material: PEM blocks read as Go's encoding/pem reads them, public keys as
 * sigstore's cryptoutils accepts them ("PUBLIC KEY" PKIX or "RSA PUBLIC KEY" PKCS#1; ECDSA,
 * RSA and Ed25519), certificates from PEM, and signature verification with the fixed SHA-256
 * sigstore uses (ECDSA ASN.1 signatures, RSA PKCS#1 v1.5, pure Ed25519). Key files are read
 * when a requirement is evaluated, like the GPG keyrings.
 */
import { promises as fsp } from 'node:fs';
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { systemErrorText } from '../../../protocol/errors';
import type { PemSource } from '../types';
import { parseCertificate, type Certificate } from './certificate';

/** A key or CA file larger than this is not one anyone means. */
const MAX_PEM_FILE_SIZE = 4 * 1024 * 1024;

/** Key material that cannot be used; the requirement rejects with this message. */
export class KeyMaterialError extends Error {}

export interface PemBlock {
  readonly type: string;
  readonly bytes: Buffer;
  /** What follows the block. */
  readonly rest: Buffer;
}

/** A PEM block found in a text, and the offset just after it. */
interface FoundBlock {
  readonly type: string;
  readonly bytes: Buffer;
  readonly end: number;
}

const BEGIN_LINE = /-----BEGIN ([^\n]*?)-----[ \t]*\r?\n/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** More certificates than this in one signature's annotation is not a chain anyone means. */
const MAX_CERTIFICATES = 64;
/** A CA file may be a whole system bundle. */
const MAX_CA_CERTIFICATES = 4096;

/**
 * The first well-formed PEM block of `text` at or after `from` (headers skipped), like Go's
 * pem.Decode. Linear in the text: the END line searched for is remembered across BEGIN lines,
 * so a text of many BEGIN lines and no END costs one scan, not one per line.
 */
function findPem(text: string, from: number): FoundBlock | undefined {
  // A block may begin right at `from` (Go decodes the rest as a text of its own), or after any newline.
  const atStart = new RegExp(BEGIN_LINE.source, 'y');
  atStart.lastIndex = from;
  const afterNewline = new RegExp(`\\n${BEGIN_LINE.source}`, 'g');
  afterNewline.lastIndex = from;
  let nextEnd = -2;
  let nextBegin = -2;
  for (let m = atStart.exec(text) ?? afterNewline.exec(text); m !== null; m = afterNewline.exec(text)) {
    const type = m[1]!;
    const bodyStart = m.index + m[0].length;
    if (nextEnd !== -1 && nextEnd < bodyStart - 1) nextEnd = text.indexOf('\n-----END ', bodyStart - 1);
    if (nextEnd === -1) return undefined;
    const endMarker = `-----END ${type}-----`;
    if (!text.startsWith(endMarker, nextEnd + 1)) continue;
    // Another BEGIN line before the END: this body is not base64, and is not copied to find that out.
    if (nextBegin !== -1 && nextBegin < bodyStart) nextBegin = text.indexOf('\n-----BEGIN ', bodyStart - 1);
    if (nextBegin !== -1 && nextBegin < nextEnd) continue;
    let body = text.slice(bodyStart, nextEnd + 1);
    // Optional "Name: value" headers end at the first empty line.
    if (/^[^\n]*:/.test(body)) {
      const blank = body.search(/\n[ \t\r]*\n/);
      if (blank < 0) continue;
      body = body.slice(body.indexOf('\n', blank + 1) + 1);
    }
    const b64 = body.replace(/\r?\n/g, '');
    if (!BASE64.test(b64)) continue;
    const after = nextEnd + 1 + endMarker.length;
    const eol = /[ \t]*(?:\r?\n|$)/y;
    eol.lastIndex = after;
    const tail = eol.exec(text);
    if (tail === null) continue;
    return { type, bytes: Buffer.from(b64, 'base64'), end: after + tail[0].length };
  }
  return undefined;
}

/** The first well-formed PEM block of `data`, or undefined; like Go's pem.Decode. */
export function decodePem(data: Buffer): PemBlock | undefined {
  const found = findPem(data.toString('latin1'), 0);
  return found === undefined ? undefined : { type: found.type, bytes: found.bytes, rest: data.subarray(found.end) };
}

/** A public key from PEM as cryptoutils.UnmarshalPEMToPublicKey reads it (the first block only). */
export function publicKeyFromPem(pem: Buffer): KeyObject {
  const block = decodePem(pem);
  if (block === undefined) throw new KeyMaterialError('PEM decoding failed');
  let key: KeyObject;
  try {
    if (block.type === 'PUBLIC KEY') key = createPublicKey({ key: block.bytes, format: 'der', type: 'spki' });
    else if (block.type === 'RSA PUBLIC KEY') key = createPublicKey({ key: block.bytes, format: 'der', type: 'pkcs1' });
    else throw new KeyMaterialError(`unknown Public key PEM file type: ${block.type}. Are you passing the correct public key?`);
  } catch (err) {
    if (err instanceof KeyMaterialError) throw err;
    throw new KeyMaterialError(`x509: ${(err as Error).message}`);
  }
  checkKeyType(key);
  return key;
}

/** Only the key types sigstore can verify with. */
function checkKeyType(key: KeyObject): void {
  const type = key.asymmetricKeyType;
  if (type === 'rsa' || type === 'ed25519') return;
  if (type === 'ec' && ['prime256v1', 'secp384r1', 'secp521r1'].includes(key.asymmetricKeyDetails?.namedCurve ?? '')) return;
  throw new KeyMaterialError(`unsupported public key type ${type ?? 'unknown'}${type === 'ec' ? ` (curve ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown'})` : ''}`);
}

/** Verifies `signature` over `payload` with sigstore's SHA-256 rules for the key's type. */
export function verifyWithKey(key: KeyObject, payload: Buffer, signature: Buffer): boolean {
  try {
    switch (key.asymmetricKeyType) {
      case 'ed25519':
        return verify(null, payload, key, signature);
      case 'ec':
        return verify('sha256', payload, { key, dsaEncoding: 'der' }, signature);
      case 'rsa':
        return verify('sha256', payload, key, signature);
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** Every certificate in a PEM text, in order, as sigstore's cryptoutils reads a chain; malformed input is KeyMaterialError. */
export function certificatesFromPem(pem: Buffer, what: string): Certificate[] {
  // Trimmed once, as cryptoutils does: text before or between blocks is skipped, text after the last is an error.
  const text = pem.toString('latin1').trim();
  const out: Certificate[] = [];
  for (let pos = 0; pos < text.length;) {
    if (out.length === MAX_CERTIFICATES) throw new KeyMaterialError(`${what}: more than ${MAX_CERTIFICATES} certificates`);
    const block = findPem(text, pos);
    if (block === undefined) throw new KeyMaterialError(`${what}: error during PEM decoding`);
    try {
      out.push(parseCertificate(block.bytes));
    } catch (err) {
      throw new KeyMaterialError(`${what}: x509: ${(err as Error).message}`);
    }
    pos = block.end;
  }
  return out;
}

/** CA certificates as Go's CertPool.AppendCertsFromPEM takes them: CERTIFICATE blocks, the unparsable skipped. */
export function caCertificatesFromPem(pem: Buffer): Certificate[] {
  const text = pem.toString('latin1');
  const out: Certificate[] = [];
  for (let block = findPem(text, 0); block !== undefined && out.length < MAX_CA_CERTIFICATES; block = findPem(text, block.end)) {
    if (block.type !== 'CERTIFICATE') continue;
    try {
      out.push(parseCertificate(block.bytes));
    } catch {
      // Skipped, as Go skips them.
    }
  }
  return out;
}

async function readPemFile(file: string): Promise<Buffer> {
  try {
    const data = await fsp.readFile(file); // node:fs/promises loads here, not with the chunk
    if (data.length > MAX_PEM_FILE_SIZE) throw new KeyMaterialError(`${file} is larger than ${MAX_PEM_FILE_SIZE} bytes`);
    return data;
  } catch (err) {
    if (err instanceof KeyMaterialError) throw err;
    throw new KeyMaterialError(`open ${file}: ${systemErrorText(err).replace(/^[A-Z]+: /, '')}`);
  }
}

/** The PEM texts a source names, in order. */
export async function readPemSource(source: PemSource): Promise<Buffer[]> {
  switch (source.kind) {
    case 'path':
      return [await readPemFile(source.path)];
    case 'paths': {
      const out: Buffer[] = [];
      for (const p of source.paths) out.push(await readPemFile(p));
      return out;
    }
    case 'data':
      return [source.data];
    case 'datas':
      return [...source.datas];
  }
}

/** Public keys of a source; `label` is "public key" or "Rekor public key" for messages. */
export async function loadPublicKeys(source: PemSource, label: string): Promise<KeyObject[]> {
  const pems = await readPemSource(source);
  return pems.map((pem, i) => {
    try {
      return publicKeyFromPem(pem);
    } catch (err) {
      throw new KeyMaterialError(`parsing ${label} ${i + 1}: ${(err as Error).message}`);
    }
  });
}
