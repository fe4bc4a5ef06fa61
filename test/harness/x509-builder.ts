/**
 * Test certificates built with node:crypto and a small DER writer: a Fulcio-like CA chain
 * (root, intermediate, short-lived leaf with Fulcio's OIDC issuer extensions and an email
 * SAN) and every way to get one wrong (expired, not a CA, wrong key usage, unknown critical
 * extension…). Written independently of the server's DER reader, so each checks the other.
 */
import { createHash, generateKeyPairSync, randomInt, sign, type KeyObject } from 'node:crypto';

const der = (tag: number, content: Buffer): Buffer => {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else len = Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
};

export const asn1 = {
  seq: (...items: Buffer[]): Buffer => der(0x30, Buffer.concat(items)),
  set: (...items: Buffer[]): Buffer => der(0x31, Buffer.concat(items)),
  int: (n: number): Buffer => {
    const bytes: number[] = [];
    let v = n;
    do {
      bytes.unshift(v & 0xff);
      v = Math.floor(v / 256);
    } while (v > 0);
    if (bytes[0]! & 0x80) bytes.unshift(0);
    return der(0x02, Buffer.from(bytes));
  },
  bool: (b: boolean): Buffer => der(0x01, Buffer.from([b ? 0xff : 0])),
  nul: (): Buffer => der(0x05, Buffer.alloc(0)),
  octets: (b: Buffer): Buffer => der(0x04, b),
  utf8: (s: string): Buffer => der(0x0c, Buffer.from(s, 'utf8')),
  ia5: (s: string): Buffer => der(0x16, Buffer.from(s, 'latin1')),
  bits: (b: Buffer, unused = 0): Buffer => der(0x03, Buffer.concat([Buffer.from([unused]), b])),
  explicit: (n: number, inner: Buffer): Buffer => der(0xa0 + n, inner),
  implicit: (n: number, content: Buffer): Buffer => der(0x80 + n, content),
  oid: (dotted: string): Buffer => {
    const arcs = dotted.split('.').map(Number);
    const out = [arcs[0]! * 40 + arcs[1]!];
    for (const arc of arcs.slice(2)) {
      const chunk: number[] = [arc & 0x7f];
      for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
      out.push(...chunk);
    }
    return der(0x06, Buffer.from(out));
  },
  time: (d: Date): Buffer => {
    const iso = d.toISOString();
    const compact = iso.slice(0, 19).replace(/[-:T]/g, '');
    return d.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(`${compact.slice(2)}Z`)) : der(0x18, Buffer.from(`${compact}Z`));
  },
};

export const OIDS = {
  codeSigning: '1.3.6.1.5.5.7.3.3',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  fulcioIssuerV1: '1.3.6.1.4.1.57264.1.1',
  fulcioIssuerV2: '1.3.6.1.4.1.57264.1.8',
} as const;

export interface Extension {
  readonly oid: string;
  readonly critical?: boolean;
  readonly value: Buffer;
}

export const ext = {
  basicConstraints: (ca: boolean, pathLen?: number): Extension => ({
    oid: '2.5.29.19', critical: true, value: asn1.seq(...(ca ? [asn1.bool(true)] : []), ...(pathLen === undefined ? [] : [asn1.int(pathLen)])),
  }),
  /** Bits as RFC 5280 numbers them: 0 digitalSignature, 5 keyCertSign, 6 cRLSign. */
  keyUsage: (...bits: number[]): Extension => {
    let v = 0;
    for (const b of bits) v |= 0x80 >> b;
    return { oid: '2.5.29.15', critical: true, value: asn1.bits(Buffer.from([v])) };
  },
  extKeyUsage: (...oids: string[]): Extension => ({ oid: '2.5.29.37', value: asn1.seq(...oids.map(asn1.oid)) }),
  emails: (...emails: string[]): Extension => ({ oid: '2.5.29.17', critical: true, value: asn1.seq(...emails.map((e) => asn1.implicit(1, Buffer.from(e, 'latin1')))) }),
  issuerV1: (issuer: string): Extension => ({ oid: OIDS.fulcioIssuerV1, value: Buffer.from(issuer, 'utf8') }),
  issuerV2: (issuer: string): Extension => ({ oid: OIDS.fulcioIssuerV2, value: asn1.utf8(issuer) }),
  nameConstraints: (): Extension => ({ oid: '2.5.29.30', critical: true, value: asn1.seq(asn1.explicit(0, asn1.seq(asn1.implicit(2, Buffer.from('example.com'))))) }),
};

function name(cn: string): Buffer {
  return asn1.seq(asn1.set(asn1.seq(asn1.oid('2.5.4.3'), asn1.utf8(cn))));
}

function signatureAlgorithm(key: KeyObject): Buffer {
  switch (key.asymmetricKeyType) {
    case 'ec': return asn1.seq(asn1.oid('1.2.840.10045.4.3.2'));
    case 'rsa': return asn1.seq(asn1.oid('1.2.840.113549.1.1.11'), asn1.nul());
    case 'ed25519': return asn1.seq(asn1.oid('1.3.101.112'));
    default: throw new Error(`no signature algorithm for ${key.asymmetricKeyType}`);
  }
}

export interface KeyPair {
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

export function ecKey(curve: 'P-256' | 'P-384' = 'P-256'): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: curve });
}

export interface CertSpec {
  readonly subject: string;
  readonly publicKey: KeyObject;
  /** The issuer's name and private key; self-signed with `selfKey` when absent. */
  readonly issuer?: { readonly name: string; readonly privateKey: KeyObject };
  readonly selfKey?: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly Extension[];
  readonly serial?: number;
}

export interface BuiltCert {
  readonly der: Buffer;
  readonly pem: string;
  readonly name: string;
  readonly sha256: string;
}

export function buildCertificate(spec: CertSpec): BuiltCert {
  const signer = spec.issuer?.privateKey ?? spec.selfKey;
  if (signer === undefined) throw new Error('a certificate needs an issuer or a self-signing key');
  const alg = signatureAlgorithm(signer);
  const extensions = spec.extensions.map((e) => asn1.seq(asn1.oid(e.oid), ...(e.critical ? [asn1.bool(true)] : []), asn1.octets(e.value)));
  const tbs = asn1.seq(
    asn1.explicit(0, asn1.int(2)),
    asn1.int(spec.serial ?? randomInt(1, 2 ** 47)),
    alg,
    name(spec.issuer?.name ?? spec.subject),
    asn1.seq(asn1.time(spec.notBefore), asn1.time(spec.notAfter)),
    name(spec.subject),
    spec.publicKey.export({ type: 'spki', format: 'der' }),
    ...(extensions.length > 0 ? [asn1.explicit(3, asn1.seq(...extensions))] : []),
  );
  const signature = signer.asymmetricKeyType === 'ed25519' ? sign(null, tbs, signer) : sign('sha256', tbs, signer);
  const certDer = asn1.seq(tbs, alg, asn1.bits(signature));
  return { der: certDer, pem: toPem('CERTIFICATE', certDer), name: spec.subject, sha256: createHash('sha256').update(certDer).digest('hex') };
}

export function toPem(label: string, bytes: Buffer): string {
  const lines = bytes.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export function publicKeyPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}
