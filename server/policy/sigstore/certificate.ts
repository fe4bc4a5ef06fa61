/**
 * X.509 certificates as sigstore verification needs them: parsed strictly from DER (node's
 * X509Certificate checks signatures and gives the public key; the DER reader gives the raw
 * names, validity, and extensions by OID), and a chain check with Go's crypto/x509 rules as
 * containers/image relies on them: names chain by exact bytes, every issuer is a CA allowed
 * to sign certificates, every certificate is valid at the given time, path lengths hold, and
 * the chain permits code signing. Name constraints are not evaluated, so a chain that has
 * them is refused rather than trusted blindly.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { childrenOf, DerError, expectTag, oidString, parseDer, Tag, timeValue, type Tlv } from './der';

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30',
  anyExtKeyUsage: '2.5.29.37.0',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  /** Fulcio's OIDC issuer, v1: the extension value is the issuer's bytes as they are. */
  fulcioIssuerV1: '1.3.6.1.4.1.57264.1.1',
  /** Fulcio's OIDC issuer, v2: a DER string. */
  fulcioIssuerV2: '1.3.6.1.4.1.57264.1.8',
} as const;

/** Extensions Go's x509 understands, so that their being critical is no reason to refuse a leaf. */
const HANDLED_CRITICAL = new Set([
  OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName, OID.nameConstraints,
  '2.5.29.14', '2.5.29.35', '2.5.29.31', '2.5.29.32', '1.3.6.1.5.5.7.1.1',
]);

/** Signature algorithms Go accepts on certificates (no SHA-1, no MD5). */
const SIGNATURE_ALGORITHMS = new Set([
  '1.2.840.113549.1.1.11', '1.2.840.113549.1.1.12', '1.2.840.113549.1.1.13', '1.2.840.113549.1.1.10',
  '1.2.840.10045.4.3.2', '1.2.840.10045.4.3.3', '1.2.840.10045.4.3.4', '1.3.101.112',
]);

export interface Extension {
  readonly critical: boolean;
  /** The extnValue OCTET STRING's content. */
  readonly value: Buffer;
}

export interface Certificate {
  readonly der: Buffer;
  readonly x509: X509Certificate;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly signatureAlgorithm: string;
  readonly version: number;
  readonly extensions: ReadonlyMap<string, Extension>;
  readonly basicConstraints: { readonly ca: boolean; readonly maxPathLen: number | undefined } | undefined;
  /** Key usage bits (bit 0 = digitalSignature, as numbered in RFC 5280), undefined when absent. */
  readonly keyUsage: readonly boolean[] | undefined;
  readonly extKeyUsage: readonly string[] | undefined;
  readonly emailAddresses: readonly string[];
  readonly publicKey: KeyObject;
}

/** Why a certificate or chain is not accepted; the message is the reason. */
export class CertificateError extends Error {}

function seq(tlv: Tlv | undefined, what: string): Tlv[] {
  return childrenOf(expectTag(tlv, Tag.sequence, what), what);
}

function bitStringBits(tlv: Tlv, what: string): boolean[] {
  const c = expectTag(tlv, Tag.bitString, what).content;
  if (c.length === 0 || c[0]! > 7) throw new DerError(`${what}: malformed BIT STRING`);
  const bits: boolean[] = [];
  for (let i = 0; i < (c.length - 1) * 8 - c[0]!; i++) bits.push((c[1 + (i >> 3)]! & (0x80 >> (i & 7))) !== 0);
  return bits;
}

function parseExtensions(tlv: Tlv): Map<string, Extension> {
  const out = new Map<string, Extension>();
  const list = seq(parseDer(tlv.content, 'extensions'), 'extensions');
  for (const ext of list) {
    const parts = seq(ext, 'extension');
    const id = oidString(parts[0]!, 'extension id');
    let critical = false;
    let i = 1;
    if (parts[i]?.tag === Tag.boolean) {
      critical = parts[i]!.content.length === 1 && parts[i]!.content[0] === 0xff;
      i++;
    }
    const value = expectTag(parts[i], Tag.octetString, `extension ${id} value`).content;
    if (i + 1 !== parts.length) throw new DerError(`extension ${id}: unexpected fields`);
    if (out.has(id)) throw new DerError(`certificate contains duplicate extension ${id}`);
    out.set(id, { critical, value });
  }
  return out;
}

function parseBasicConstraints(ext: Extension | undefined): Certificate['basicConstraints'] {
  if (ext === undefined) return undefined;
  const parts = seq(parseDer(ext.value, 'basic constraints'), 'basic constraints');
  let ca = false;
  let maxPathLen: number | undefined;
  for (const p of parts) {
    if (p.tag === Tag.boolean) ca = p.content[0] === 0xff;
    else if (p.tag === Tag.integer && p.content.length <= 4 && (p.content[0]! & 0x80) === 0) maxPathLen = p.content.readUIntBE(0, p.content.length);
    else throw new DerError('basic constraints: malformed');
  }
  return { ca, maxPathLen };
}

function parseEmails(ext: Extension | undefined): string[] {
  if (ext === undefined) return [];
  const out: string[] = [];
  for (const name of childrenOf(expectTag(parseDer(ext.value, 'subject alternative name'), Tag.sequence, 'subject alternative name'), 'subject alternative name')) {
    // rfc822Name is [1] IMPLICIT IA5String.
    if (name.tag !== 0x81) continue;
    const text = name.content.toString('latin1');
    if (!/^[\x20-\x7e]*$/.test(text)) throw new DerError('subject alternative name: malformed rfc822Name');
    out.push(text);
  }
  return out;
}

/** Parses one DER certificate; DerError (or node's error) when it is malformed. */
export function parseCertificate(der: Buffer): Certificate {
  const top = seq(parseDer(der, 'certificate'), 'certificate');
  if (top.length !== 3) throw new DerError('certificate: expected 3 fields');
  const tbs = seq(top[0], 'tbsCertificate');
  const outerAlgorithm = oidString(seq(top[1], 'signatureAlgorithm')[0]!, 'signature algorithm');
  let i = 0;
  let version = 1;
  if (tbs[i]?.tag === 0xa0) {
    const v = expectTag(parseDer(tbs[i]!.content, 'version'), Tag.integer, 'version').content;
    version = v.length === 1 ? v[0]! + 1 : 0;
    i++;
  }
  i++; // serial number
  const innerAlgorithm = oidString(seq(tbs[i++], 'signature')[0]!, 'signature algorithm');
  if (innerAlgorithm !== outerAlgorithm) throw new DerError('inner and outer signature algorithm identifiers don\'t match');
  const issuer = expectTag(tbs[i++], Tag.sequence, 'issuer').bytes;
  const validity = seq(tbs[i++], 'validity');
  if (validity.length !== 2) throw new DerError('validity: expected 2 times');
  const subject = expectTag(tbs[i++], Tag.sequence, 'subject').bytes;
  i++; // subjectPublicKeyInfo, read by node below
  while (i < tbs.length && (tbs[i]!.tag === 0x81 || tbs[i]!.tag === 0x82 || tbs[i]!.tag === 0xa1 || tbs[i]!.tag === 0xa2)) i++;
  let extensions = new Map<string, Extension>();
  if (i < tbs.length) {
    extensions = parseExtensions(expectTag(tbs[i++], 0xa3, 'extensions'));
    if (version !== 3) throw new DerError('extensions in a certificate that is not version 3');
  }
  if (i !== tbs.length) throw new DerError('tbsCertificate: unexpected fields');
  const x509 = new X509Certificate(der);
  const ku = extensions.get(OID.keyUsage);
  const eku = extensions.get(OID.extKeyUsage);
  return {
    der,
    x509,
    issuer,
    subject,
    notBefore: timeValue(validity[0]!, 'notBefore'),
    notAfter: timeValue(validity[1]!, 'notAfter'),
    signatureAlgorithm: outerAlgorithm,
    version,
    extensions,
    basicConstraints: parseBasicConstraints(extensions.get(OID.basicConstraints)),
    keyUsage: ku === undefined ? undefined : bitStringBits(parseDer(ku.value, 'key usage'), 'key usage'),
    extKeyUsage: eku === undefined ? undefined : seq(parseDer(eku.value, 'extended key usage'), 'extended key usage').map((o) => oidString(o, 'extended key usage')),
    emailAddresses: parseEmails(extensions.get(OID.subjectAltName)),
    publicKey: x509.publicKey,
  };
}

/** Whether `parent` names the issuer of `child`: the only candidates whose signature is checked. */
function namesIssuer(child: Certificate, parent: Certificate): boolean {
  return child.issuer.equals(parent.subject);
}

/** Whether `parent` may have signed `child`, and did (Go's CheckSignatureFrom). */
function signedBy(child: Certificate, parent: Certificate): boolean {
  if (parent.version === 3 && parent.basicConstraints?.ca !== true) return false;
  if (parent.keyUsage !== undefined && parent.keyUsage.some(Boolean) && parent.keyUsage[5] !== true) return false;
  if (!SIGNATURE_ALGORITHMS.has(child.signatureAlgorithm)) return false;
  try {
    return child.x509.verify(parent.publicKey);
  } catch {
    return false;
  }
}

const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

/** Why `chain` (leaf first, root last) is not valid at `time` for code signing; undefined when it is. */
function chainProblem(chain: readonly Certificate[], time: Date): string | undefined {
  for (const [i, cert] of chain.entries()) {
    if (time < cert.notBefore) return `x509: certificate has expired or is not yet valid: current time ${iso(time)} is before ${iso(cert.notBefore)}`;
    if (time > cert.notAfter) return `x509: certificate has expired or is not yet valid: current time ${iso(time)} is after ${iso(cert.notAfter)}`;
    if (i > 0 && cert.extensions.has(OID.nameConstraints)) return 'x509: a CA certificate has name constraints, which are not supported';
    if (i > 0 && i < chain.length - 1 && cert.basicConstraints?.ca !== true) return 'x509: an intermediate certificate is not a CA';
    const maxPathLen = cert.basicConstraints?.maxPathLen;
    if (i > 0 && maxPathLen !== undefined && i - 1 > maxPathLen) return 'x509: too many intermediates for path length constraint';
    const eku = cert.extKeyUsage;
    if (eku !== undefined && eku.length > 0 && !eku.includes(OID.codeSigning) && !eku.includes(OID.anyExtKeyUsage)) {
      return 'x509: certificate specifies an incompatible key usage';
    }
  }
  return undefined;
}

/**
 * Checks that `leaf` chains through `intermediates` to one of `roots` with every certificate
 * valid at `time`; throws CertificateError with the reason otherwise.
 */
export function verifyChain(leaf: Certificate, intermediates: readonly Certificate[], roots: readonly Certificate[], time: Date): void {
  for (const [id, ext] of leaf.extensions) {
    if (ext.critical && !HANDLED_CRITICAL.has(id)) throw new CertificateError('x509: unhandled critical extension');
  }
  const problems: string[] = [];
  let checks = 0;
  const extend = (chain: Certificate[]): boolean => {
    const last = chain[chain.length - 1]!;
    for (const root of roots) {
      if (!namesIssuer(last, root) || ++checks > 100 || !signedBy(last, root)) continue;
      const problem = chainProblem([...chain, root], time);
      if (problem === undefined) return true;
      problems.push(problem);
    }
    if (chain.length > 8) return false;
    for (const next of intermediates) {
      if (chain.includes(next) || !namesIssuer(last, next) || ++checks > 100 || !signedBy(last, next)) continue;
      if (extend([...chain, next])) return true;
    }
    return false;
  };
  if (extend([leaf])) return;
  throw new CertificateError(problems[0] ?? 'x509: certificate signed by unknown authority');
}
