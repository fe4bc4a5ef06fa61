/**
 * Sigstore's key material: PEM blocks read as Go's encoding/pem reads them, public keys as
 * sigstore's cryptoutils accepts them ("PUBLIC KEY" PKIX or "RSA PUBLIC KEY" PKCS#1; ECDSA,
 * RSA and Ed25519), certificates from PEM, and signature verification with the fixed SHA-256
 * sigstore uses (ECDSA ASN.1 signatures, RSA PKCS#1 v1.5, pure Ed25519). Key files are read
 * when a requirement is evaluated, like the GPG keyrings.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
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

const BEGIN = /(?:^|\n)-----BEGIN ([^\n]*?)-----[ \t]*\r?\n/g;

/** The first well-formed PEM block of `data` (headers skipped), or undefined; like Go's pem.Decode. */
export function decodePem(data: Buffer): PemBlock | undefined {
  const text = data.toString('latin1');
  BEGIN.lastIndex = 0;
  for (let m = BEGIN.exec(text); m !== null; m = BEGIN.exec(text)) {
    const type = m[1]!;
    const bodyStart = m.index + m[0].length;
    const endMarker = `-----END ${type}-----`;
    const end = text.indexOf(endMarker, bodyStart);
    if (end < 0) continue;
    let body = text.slice(bodyStart, end);
    // Optional "Name: value" headers end at the first empty line.
    const lines = body.split('\n');
    if (lines[0]?.includes(':')) {
      const blank = lines.findIndex((l) => l.trim() === '');
      if (blank < 0) continue;
      body = lines.slice(blank + 1).join('\n');
    }
    const b64 = body.replace(/\r?\n/g, '');
    if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b64)) continue;
    if (end > 0 && text[end - 1] !== '\n') continue;
    let after = end + endMarker.length;
    const eol = /^[ \t]*(?:\r?\n|$)/.exec(text.slice(after));
    if (eol === null) continue;
    after += eol[0].length;
    return { type, bytes: Buffer.from(b64, 'base64'), rest: data.subarray(after) };
  }
  return undefined;
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

/** The DER SubjectPublicKeyInfo of a key, as Go's MarshalPKIXPublicKey writes it. */
export function spkiDer(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
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

/** Every certificate in a PEM text, in order; CertificateError-free: malformed input is KeyMaterialError. */
export function certificatesFromPem(pem: Buffer, what: string): Certificate[] {
  const out: Certificate[] = [];
  let rest = Buffer.from(pem.toString('latin1').trim(), 'latin1');
  while (rest.length > 0) {
    const block = decodePem(rest);
    if (block === undefined) throw new KeyMaterialError(`${what}: error during PEM decoding`);
    try {
      out.push(parseCertificate(block.bytes));
    } catch (err) {
      throw new KeyMaterialError(`${what}: x509: ${(err as Error).message}`);
    }
    rest = Buffer.from(block.rest.toString('latin1').trim(), 'latin1');
  }
  return out;
}

/** CA certificates as Go's CertPool.AppendCertsFromPEM takes them: CERTIFICATE blocks, the unparsable skipped. */
export function caCertificatesFromPem(pem: Buffer): Certificate[] {
  const out: Certificate[] = [];
  for (let block = decodePem(pem); block !== undefined; block = decodePem(block.rest)) {
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
    const data = await readFile(file);
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
