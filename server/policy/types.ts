/** A parsed containers-policy.json(5): what parse.ts produces and evaluate.ts consumes. */

/** How a signature's claimed identity must relate to the image (signedIdentity). */
export type IdentityMatch =
  | { readonly type: 'matchExact' }
  | { readonly type: 'matchRepoDigestOrExact' }
  | { readonly type: 'matchRepository' }
  | { readonly type: 'exactReference'; readonly dockerReference: string }
  | { readonly type: 'exactRepository'; readonly dockerRepository: string }
  | { readonly type: 'remapIdentity'; readonly prefix: string; readonly signedPrefix: string };

/** Where a signedBy requirement's keys come from: exactly one of keyPath, keyPaths, keyData. */
export type KeySource =
  | { readonly kind: 'keyPath'; readonly path: string }
  | { readonly kind: 'keyPaths'; readonly paths: readonly string[] }
  | { readonly kind: 'keyData'; readonly data: Buffer };

/** Where sigstoreSigned PEM data comes from: keyPath / keyPaths / keyData / keyDatas and the rekorPublicKey… equivalents. */
export type PemSource =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'paths'; readonly paths: readonly string[] }
  | { readonly kind: 'data'; readonly data: Buffer }
  | { readonly kind: 'datas'; readonly datas: readonly Buffer[] };

/** A sigstoreSigned "fulcio" section: the CA certificates, and the identity a certificate must carry. */
export interface FulcioTrust {
  readonly ca: Extract<PemSource, { kind: 'path' | 'data' }>;
  readonly oidcIssuer: string;
  readonly subjectEmail: string;
}

/** What a sigstoreSigned requirement trusts: public keys, or a Fulcio CA with a Rekor key, or (unsupported here) a "pki". */
export type SigstoreTrust =
  | { readonly kind: 'keys'; readonly keys: PemSource; readonly rekorKeys: PemSource | undefined }
  | { readonly kind: 'fulcio'; readonly fulcio: FulcioTrust; readonly rekorKeys: PemSource }
  | { readonly kind: 'pki' };

export type Requirement =
  | { readonly type: 'insecureAcceptAnything' }
  | { readonly type: 'reject' }
  | { readonly type: 'signedBy'; readonly keyType: string; readonly keys: KeySource; readonly signedIdentity: IdentityMatch }
  | { readonly type: 'signedBaseLayer'; readonly baseLayerIdentity: IdentityMatch }
  | { readonly type: 'sigstoreSigned'; readonly trust: SigstoreTrust; readonly signedIdentity: IdentityMatch };

export interface Policy {
  readonly default: readonly Requirement[];
  /** transport name -> scope -> requirements. */
  readonly transports: ReadonlyMap<string, ReadonlyMap<string, readonly Requirement[]>>;
}
