/**
 * The signatures of an opened docker:// image. Apart from source.ts, and loaded the first time
 * a policy or a client asks for signatures: registries.d (YAML), lookasides and sigstore
 * attachments are not needed to pull an image whose policy checks none.
 */
import { loadRegistriesD, lookasideFor, registriesDirectory, useSigstoreAttachmentsFor } from '../../config/registries-d';
import { sha256Digest } from '../../image/digest';
import { checkSignatureBounds, simpleSigning, type ImageSignature } from '../../image/signatures';
import type { SystemContext } from '../../image/types';
import { nameOf, policyIdentityOf, policyNamespacesOf } from '../../reference/docker-reference';
import { readLookasideSignatures } from './lookaside';
import { readExtensionSignatures } from './signature-extension';
import { readSigstoreAttachments } from './sigstore-attachments';
import type { OpenedSource } from './source';

/**
 * Signatures of the place the image is read from, as containers/image finds them:
 * simple-signing ones from the registry's signature extension when its /v2/ advertises it,
 * else from the lookaside registries.d names (or the built-in default one); then sigstore
 * attachments when registries.d enables them.
 */
export async function readDockerSignatures(ctx: SystemContext, opened: OpenedSource, instanceDigest: string | undefined, signal: AbortSignal): Promise<ImageSignature[]> {
  const config = await loadRegistriesD(await registriesDirectory(ctx.registry.registriesDir));
  const physical = opened.physical;
  const scopes = [policyIdentityOf(physical), ...policyNamespacesOf(physical)];
  const digest = instanceDigest ?? sha256Digest(opened.manifest.bytes);
  const out: ImageSignature[] = [];
  const base = lookasideFor(config, scopes);
  if (await opened.client.supportsSignatureExtension(signal)) {
    const blobs = await readExtensionSignatures(opened.client, physical.repository, digest, signal);
    out.push(...blobs.map(simpleSigning));
  } else {
    // The layout names the repository path only, without the registry host.
    const blobs = await readLookasideSignatures(base, physical.repository, digest, signal);
    out.push(...blobs.map(simpleSigning));
  }
  if (useSigstoreAttachmentsFor(config, scopes)) {
    out.push(...(await readSigstoreAttachments(opened.client, physical.repository, digest, ctx.log, signal)));
  }
  checkSignatureBounds(`${nameOf(physical)}@${digest}`, out);
  return out;
}
