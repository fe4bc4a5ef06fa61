/**
 * `layerpipe inspect IMAGE`: what the proxy would serve, for a person at a terminal, with the
 * image's signatures and the policy's verdict. A refused image is still reported (its name,
 * top-level manifest, signatures and the reason), but nothing of it is resolved, as for the
 * proxy; the command then fails, so scripts that trust its status stay safe.
 */
import { errorMessage } from '../../protocol/errors';
import type { SignatureInfo } from '../../protocol/jsonrpc';
import { openAndJudge } from '../image/open';
import type { SystemContext } from '../image/types';
import type { UnparsedImage } from '../image/unparsed';
import { describeSignatures } from '../policy/report';
import { parseImageName } from '../transports/all';

export interface PolicyVerdictReport {
  verdict: 'accepted' | 'rejected';
  /** The policy scope that applied ("docker:registry.example.com/app", "default"). */
  scope: string;
  reason?: string;
}

export interface InspectReport {
  Name: string;
  /** The chosen instance's digest; for a refused image, that of the manifest the reference names. */
  Digest: string;
  ListDigest?: string;
  ManifestType: string;
  /** Absent for a refused image, which is not resolved. */
  Created?: string;
  Os?: string;
  Architecture?: string;
  Variant?: string;
  Config?: Record<string, unknown>;
  Layers?: { digest: string; size: number; mediaType: string }[];
  Signatures: SignatureInfo[];
  /** Why the signatures could not be read (a lookaside that does not answer), when they could not. */
  SignaturesError?: string;
  Policy: PolicyVerdictReport;
}

export interface InspectOutcome {
  readonly report: InspectReport;
  /** The policy's reason when it refuses the image. */
  readonly refusal: string | undefined;
}

async function signaturesOf(ctx: SystemContext, unparsed: UnparsedImage): Promise<Pick<InspectReport, 'Signatures' | 'SignaturesError'>> {
  try {
    return { Signatures: await describeSignatures(ctx.policy, unparsed) };
  } catch (err) {
    // A report shows what it could not read instead of failing on it.
    return { Signatures: [], SignaturesError: errorMessage(err) };
  }
}

export async function inspectImage(name: string, ctx: SystemContext): Promise<InspectOutcome> {
  const judged = await openAndJudge(parseImageName(name), ctx, new AbortController().signal);
  const { unparsed, verdict } = judged;
  try {
    const Policy: PolicyVerdictReport = verdict.refusal === undefined
      ? { verdict: 'accepted', scope: verdict.scope }
      : { verdict: 'rejected', scope: verdict.scope, reason: verdict.refusal };
    const image = judged.image;
    if (image === undefined) {
      const report = { Name: unparsed.reference.toString(), Digest: unparsed.manifestDigest, ManifestType: unparsed.manifestType, ...(await signaturesOf(ctx, unparsed)), Policy };
      return { report, refusal: judged.refusal };
    }
    const config = JSON.parse((await image.ociConfig()).toString('utf8')) as Record<string, unknown>;
    const report: InspectReport = {
      Name: image.source.reference.toString(),
      Digest: image.manifestDigest,
      ...(image.listDigest === undefined ? {} : { ListDigest: image.listDigest }),
      ManifestType: image.manifestType,
      ...(typeof config.created === 'string' ? { Created: config.created } : {}),
      Os: String(config.os ?? ''),
      Architecture: String(config.architecture ?? ''),
      ...(typeof config.variant === 'string' ? { Variant: config.variant } : {}),
      Config: (config.config as Record<string, unknown> | undefined) ?? {},
      Layers: image.layerInfos().map((l) => ({ digest: l.digest, size: l.size, mediaType: l.media_type })),
      ...(await signaturesOf(ctx, unparsed)),
      Policy,
    };
    return { report, refusal: undefined };
  } finally {
    await unparsed.source.close();
  }
}
