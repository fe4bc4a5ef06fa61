/** `layerpipe inspect IMAGE`: what the proxy would serve, for a person at a terminal. */
import { openImageByName } from '../image/open';
import type { SystemContext } from '../image/types';

export interface InspectReport {
  Name: string;
  Digest: string;
  ListDigest?: string;
  ManifestType: string;
  Created?: string;
  Os: string;
  Architecture: string;
  Variant?: string;
  Config: Record<string, unknown>;
  Layers: { digest: string; size: number; mediaType: string }[];
}

export async function inspectImage(name: string, ctx: SystemContext): Promise<InspectReport> {
  const image = await openImageByName(name, ctx, new AbortController().signal);
  try {
    const config = JSON.parse((await image.ociConfig()).toString('utf8')) as Record<string, unknown>;
    const report: InspectReport = {
      Name: image.source.reference.toString(),
      Digest: image.manifestDigest,
      ManifestType: image.manifestType,
      Os: String(config.os ?? ''),
      Architecture: String(config.architecture ?? ''),
      Config: (config.config as Record<string, unknown> | undefined) ?? {},
      Layers: image.layerInfos().map((l) => ({ digest: l.digest, size: l.size, mediaType: l.media_type })),
    };
    if (image.listDigest !== undefined) report.ListDigest = image.listDigest;
    if (typeof config.created === 'string') report.Created = config.created;
    if (typeof config.variant === 'string') report.Variant = config.variant;
    return report;
  } finally {
    await image.close();
  }
}
