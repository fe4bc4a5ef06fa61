/**
 * Fulcio certificates: the signing key of a keyless sigstore signature is in a short-lived
 * certificate (annotation "dev.sigstore.cosign/certificate", intermediates in
 * "dev.sigstore.cosign/chain"). It is accepted when it chains to the policy's CA at the time
 * Rekor logged the signature, carries the policy's OIDC issuer in Fulcio's extension and the
 * policy's email among its subject alternative names; its key then verifies the payload.
 */
import type { KeyObject } from 'node:crypto';
import { SignatureRejected } from '../simple-signing';
import { OID, CertificateError, verifyChain, type Certificate } from './certificate';
import { DerError, parseDer, stringValue } from './der';
import { certificatesFromPem, KeyMaterialError } from './keys';

export interface FulcioRoots {
  readonly cas: readonly Certificate[];
  readonly oidcIssuer: string;
  readonly subjectEmail: string;
}

function invalid(message: string): never {
  throw new SignatureRejected(message);
}

/** The OIDC issuer Fulcio recorded; both extension versions must agree when both are present. */
export function fulcioIssuerOf(cert: Certificate): string {
  const v1 = cert.extensions.get(OID.fulcioIssuerV1);
  const v2 = cert.extensions.get(OID.fulcioIssuerV2);
  let issuer2: string | undefined;
  if (v2 !== undefined) {
    try {
      issuer2 = stringValue(parseDer(v2.value, 'OIDC issuer v2 extension'), 'OIDC issuer v2 extension');
    } catch (err) {
      invalid(`invalid ASN.1 in OIDC issuer v2 extension: ${(err as Error).message}`);
    }
  }
  const issuer1 = v1?.value.toString('utf8');
  if (issuer1 !== undefined && issuer2 !== undefined) {
    if (issuer1 !== issuer2) invalid(`inconsistent OIDC issuer extension values: v1 ${JSON.stringify(issuer1)}, v2 ${JSON.stringify(issuer2)}`);
    return issuer1;
  }
  const issuer = issuer1 ?? issuer2;
  if (issuer === undefined) invalid('Fulcio certificate is missing the issuer extension');
  return issuer;
}

function leafOf(certificatePem: string): Certificate {
  let certs: Certificate[];
  try {
    certs = certificatesFromPem(Buffer.from(certificatePem, 'utf8'), 'parsing leaf certificate');
  } catch (err) {
    if (err instanceof KeyMaterialError || err instanceof DerError) invalid(err.message);
    throw err;
  }
  if (certs.length === 0) invalid('no certificate found in signature certificate data');
  if (certs.length > 1) invalid('unexpected multiple certificates present in signature certificate data');
  return certs[0]!;
}

/**
 * Checks the certificate of a signature logged at `loggedAt` (seconds since the epoch) against
 * `roots`; its public key, or SignatureRejected with the reason.
 */
export function verifyFulcioCertificate(roots: FulcioRoots, certificatePem: string, chainPem: string | undefined, loggedAt: number): KeyObject {
  let intermediates: Certificate[] = [];
  if (chainPem !== undefined && chainPem !== '') {
    try {
      // The last certificate of the chain is its root: only the policy's CAs are trusted as roots.
      intermediates = certificatesFromPem(Buffer.from(chainPem, 'utf8'), 'loading certificate chain').slice(0, -1);
    } catch (err) {
      if (err instanceof KeyMaterialError) invalid(err.message);
      throw err;
    }
  }
  const leaf = leafOf(certificatePem);
  try {
    verifyChain(leaf, intermediates, roots.cas, new Date(loggedAt * 1000));
  } catch (err) {
    if (err instanceof CertificateError) invalid(`verifying leaf certificate failed: ${err.message}`);
    throw err;
  }
  const issuer = fulcioIssuerOf(leaf);
  if (issuer !== roots.oidcIssuer) invalid(`Unexpected Fulcio OIDC issuer ${JSON.stringify(issuer)}`);
  if (!leaf.emailAddresses.includes(roots.subjectEmail)) {
    invalid(`Required email ${JSON.stringify(roots.subjectEmail)} not found (got ${JSON.stringify(leaf.emailAddresses)})`);
  }
  return leaf.publicKey;
}
