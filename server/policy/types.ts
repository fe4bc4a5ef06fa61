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

export type Requirement =
  | { readonly type: 'insecureAcceptAnything' }
  | { readonly type: 'reject' }
  | { readonly type: 'signedBy'; readonly keyType: string; readonly keys: KeySource; readonly signedIdentity: IdentityMatch }
  | { readonly type: 'signedBaseLayer'; readonly baseLayerIdentity: IdentityMatch }
  | { readonly type: 'sigstoreSigned' };

export interface Policy {
  readonly default: readonly Requirement[];
  /** transport name -> scope -> requirements. */
  readonly transports: ReadonlyMap<string, ReadonlyMap<string, readonly Requirement[]>>;
}
