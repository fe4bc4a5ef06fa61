/**
 * Sigstore signatures made in the tests, the way cosign makes them: the simple-signing payload,
 * its signature with a key (ECDSA P-256/P-384, RSA, Ed25519) or a Fulcio-like certificate,
 * and a Rekor SET from a test Rekor key over the canonical JSON of the log entry. Each piece
 * can be made wrong on purpose. The canonical JSON here is written by hand (keys in order),
 * independently of the server's canonicaliser.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { buildCertificate, ecKey, ext, OIDS, publicKeyPem, type BuiltCert, type KeyPair } from './x509-builder';

export const SIGSTORE_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const ANNOTATIONS = {
  signature: 'dev.cosignproject.cosign/signature',
  bundle: 'dev.sigstore.cosign/bundle',
  certificate: 'dev.sigstore.cosign/certificate',
  chain: 'dev.sigstore.cosign/chain',
} as const;

export function payloadFor(digest: string, reference: string, extra: { critical?: Record<string, unknown>; optional?: unknown; type?: string } = {}): Buffer {
  return Buffer.from(JSON.stringify({
    critical: { identity: { 'docker-reference': reference }, image: { 'docker-manifest-digest': digest }, type: extra.type ?? 'cosign container image signature', ...extra.critical },
    optional: extra.optional === undefined ? { creator: 'layerpipe tests' } : extra.optional,
  }));
}

/** Base64 signature over `payload` as cosign makes it for the key's type. */
export function signPayload(privateKey: KeyObject, payload: Buffer): string {
  const sig = privateKey.asymmetricKeyType === 'ed25519' ? sign(null, payload, privateKey) : sign('sha256', payload, privateKey);
  return sig.toString('base64');
}

export const keyPairs = {
  p256: (): KeyPair => ecKey('P-256'),
  p384: (): KeyPair => ecKey('P-384'),
  rsa: (): KeyPair => generateKeyPairSync('rsa', { modulusLength: 2048 }),
  ed25519: (): KeyPair => generateKeyPairSync('ed25519'),
};

export interface SetOptions {
  /** PEM of the key or certificate the log entry names. */
  readonly signerPem: string;
  readonly base64Signature: string;
  readonly payload: Buffer;
  readonly integratedTime: number;
  readonly kind?: string;
  readonly apiVersion?: string;
  readonly payloadHash?: string;
}

/** The JSON of a cosign bundle annotation: {SignedEntryTimestamp, Payload}, signed by `rekorKey`. */
export function rekorSet(rekorKey: KeyObject, o: SetOptions): string {
  const body = {
    apiVersion: o.apiVersion ?? '0.0.1',
    kind: o.kind ?? 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: o.payloadHash ?? createHash('sha256').update(o.payload).digest('hex') } },
      signature: { content: o.base64Signature, publicKey: { content: Buffer.from(o.signerPem).toString('base64') } },
    },
  };
  const bodyB64 = Buffer.from(JSON.stringify(body)).toString('base64');
  // Keys in code-unit order with plain values: this is the canonical form.
  const canonical = `{"body":${JSON.stringify(bodyB64)},"integratedTime":${o.integratedTime},"logID":"${'ab'.repeat(32)}","logIndex":12345}`;
  const signature = sign('sha256', Buffer.from(canonical), rekorKey).toString('base64');
  // Delivered with keys in another order and spacing: verification must canonicalise.
  return `{"SignedEntryTimestamp":"${signature}","Payload":{"logIndex":12345,"logID":"${'ab'.repeat(32)}", "integratedTime":${o.integratedTime},"body":"${bodyB64}"}}`;
}

export const ISSUER = 'https://issuer.example.com';
export const EMAIL = 'signer@example.com';

/** A root CA, an intermediate and a way to issue Fulcio-like leaves, valid around `now`. */
export class TestFulcio {
  readonly rootKey = ecKey('P-384');
  readonly intermediateKey = ecKey('P-256');
  readonly root: BuiltCert;
  readonly intermediate: BuiltCert;

  constructor(readonly now: Date, rootName = 'layerpipe test fulcio root') {
    const year = 365 * 86400_000;
    this.root = buildCertificate({
      subject: rootName, publicKey: this.rootKey.publicKey, selfKey: this.rootKey.privateKey,
      notBefore: new Date(now.getTime() - year), notAfter: new Date(now.getTime() + year),
      extensions: [ext.basicConstraints(true, 1), ext.keyUsage(5, 6)],
    });
    this.intermediate = buildCertificate({
      subject: `${rootName} intermediate`, publicKey: this.intermediateKey.publicKey, issuer: { name: rootName, privateKey: this.rootKey.privateKey },
      notBefore: new Date(now.getTime() - year), notAfter: new Date(now.getTime() + year),
      extensions: [ext.basicConstraints(true, 0), ext.keyUsage(5, 6), ext.extKeyUsage(OIDS.codeSigning)],
    });
  }

  /** A leaf valid for ten minutes from `now`, for `signer`'s public key. */
  leaf(signer: KeyObject, opts: { issuer?: string | null; issuerV2?: string; email?: string; eku?: string; validFrom?: Date; extra?: Parameters<typeof buildCertificate>[0]['extensions'] } = {}): BuiltCert {
    const from = opts.validFrom ?? this.now;
    return buildCertificate({
      subject: '', publicKey: signer, issuer: { name: this.intermediate.name, privateKey: this.intermediateKey.privateKey },
      notBefore: from, notAfter: new Date(from.getTime() + 600_000),
      extensions: [
        ext.keyUsage(0), ext.extKeyUsage(opts.eku ?? OIDS.codeSigning), ext.emails(opts.email ?? EMAIL),
        ...(opts.issuer === null ? [] : [ext.issuerV1(opts.issuer ?? ISSUER)]),
        ...(opts.issuerV2 === undefined ? [] : [ext.issuerV2(opts.issuerV2)]),
        ...(opts.extra ?? []),
      ],
    });
  }

  /** The chain annotation cosign writes: intermediates, then the root. */
  chainPem(): string {
    return this.intermediate.pem + this.root.pem;
  }
}

export { publicKeyPem };
