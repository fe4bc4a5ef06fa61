/**
 * `layerpipe inspect IMAGE`: what `skopeo inspect` prints, field for field (skopeo 1.9.3's
 * output: Name, Digest, RepoTags, Created, DockerVersion, Labels, Architecture, Os, Layers, Env).
 * Digest is that of the manifest the reference names (a list's own digest for a multi-arch
 * image); the other fields are those of the instance chosen for this platform.
 *
 * skopeo's inspect does not consult the signature policy, so neither does this by default.
 * `--signatures` is layerpipe's: it adds the image's signatures and the policy's verdict after
 * skopeo's fields, and a refused image is reported without being resolved, then fails.
 */
import { AccessDeniedError, errorMessage, ImageNotFoundError } from '../../protocol/errors';
import type { SignatureInfo } from '../../protocol/jsonrpc';
import type { OpenedImage } from '../image/image';
import type { ImageReference, SystemContext } from '../image/types';
import type { UnparsedImage } from '../image/unparsed';
import type { PolicyVerdict } from '../policy/evaluate';
import { describeSignatures } from '../policy/report';
import { nameOf } from '../reference/docker-reference';
import { sortedGoMap, type GoJsonValue } from './go-json';
import { goSprint, goTimeString, type TemplateField } from './go-template';

/** skopeo 1.9.3's inspect output, in its field order. Name is omitted when the image has no docker reference. */
export interface SkopeoInspectOutput {
  readonly Name?: string;
  readonly Digest: string;
  readonly RepoTags: readonly string[];
  /** RFC 3339 as Go writes it; null when the config has no date. */
  readonly Created: string | null;
  readonly DockerVersion: string;
  readonly Labels: ReadonlyMap<string, string> | null;
  readonly Architecture: string;
  readonly Os: string;
  readonly Layers: readonly string[];
  readonly Env: readonly string[] | null;
}

/** What --signatures adds. */
export interface SignatureReport {
  readonly Signatures: readonly SignatureInfo[];
  /** Why the signatures could not be read (a lookaside that does not answer), when they could not. */
  readonly SignaturesError?: string;
  readonly Policy: { readonly verdict: 'accepted' | 'rejected'; readonly scope: string; readonly reason?: string };
}

/** The fields a --format template may name; a map field (Labels) also takes one key below it. */
const FIELDS = ['Name', 'Tag', 'Digest', 'RepoTags', 'Created', 'DockerVersion', 'Labels', 'Architecture', 'Os', 'Layers', 'Env'] as const;

export function isOutputField(path: readonly string[]): boolean {
  if (!(FIELDS as readonly string[]).includes(path[0]!)) return false;
  return path.length === 1 || (path.length === 2 && path[0] === 'Labels');
}

/** A field as text/template sees skopeo's Go struct: nil slices print as [], a nil map as map[], a nil time as <nil>. */
export function outputField(out: SkopeoInspectOutput, path: readonly string[]): TemplateField | 'no value' | undefined {
  if (!isOutputField(path)) return undefined;
  const [name, key] = path as [string, string | undefined];
  if (name === 'Labels' && key !== undefined) {
    const value = out.Labels?.get(key);
    return value === undefined ? 'no value' : { text: value, json: value };
  }
  switch (name) {
    case 'Name': return { text: out.Name ?? '', json: out.Name ?? '' };
    case 'Tag': return { text: '', json: '' };
    case 'Created': return { text: out.Created === null ? '<nil>' : goTimeString(out.Created), json: out.Created };
    case 'Labels': return { text: goSprint(out.Labels ?? new Map()), json: out.Labels };
    case 'RepoTags':
    case 'Layers':
    case 'Env': {
      const list = out[name];
      return { text: goSprint(list ?? []), json: list };
    }
    default: {
      const text = out[name as 'Digest' | 'DockerVersion' | 'Architecture' | 'Os'];
      return { text, json: text };
    }
  }
}

/** The output as a JSON value, in skopeo's order, with --signatures' report after it. */
export function outputJson(out: SkopeoInspectOutput, extra: SignatureReport | undefined): GoJsonValue {
  return { ...out, ...extra } as unknown as GoJsonValue;
}

/** --signatures on a refused image: only what was read before the verdict (nothing is resolved). */
export function refusedJson(unparsed: UnparsedImage, report: SignatureReport): GoJsonValue {
  const named = unparsed.reference.dockerReference;
  return { ...(named !== undefined ? { Name: nameOf(named) } : {}), Digest: unparsed.manifestDigest, ...report } as unknown as GoJsonValue;
}

/**
 * The tags of a docker:// image's repository, as skopeo lists them for RepoTags; a registry
 * that refuses to list them (denied, or no such endpoint) gives none, with a warning, as in skopeo.
 */
async function repoTags(reference: ImageReference, ctx: SystemContext, signal: AbortSignal): Promise<string[]> {
  const named = reference.dockerReference;
  if (reference.transport.name !== 'docker' || named === undefined || reference.transport.listTags === undefined) return [];
  try {
    return await reference.transport.listTags(`//${nameOf(named)}`, ctx, signal);
  } catch (err) {
    if (err instanceof AccessDeniedError || err instanceof ImageNotFoundError) {
      ctx.log.warn(`Registry disallows tag list retrieval; skipping (${errorMessage(err)})`);
      return [];
    }
    throw err; // its message says "listing tags of HOST/REPO: ..."
  }
}

function stringOrEmpty(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** skopeo inspect's summary of an opened (resolved) image. */
export async function inspectOutput(image: OpenedImage, ctx: SystemContext, listTags: boolean, signal: AbortSignal): Promise<SkopeoInspectOutput> {
  const config = JSON.parse((await image.ociConfig()).toString('utf8')) as { created?: unknown; architecture?: unknown; os?: unknown; config?: { Labels?: Record<string, string | null> | null; Env?: string[] | null } };
  const stored = JSON.parse((await image.storedConfig()).toString('utf8')) as { docker_version?: unknown };
  const named = image.source.reference.dockerReference;
  const labels = config.config?.Labels;
  return {
    ...(named !== undefined ? { Name: nameOf(named) } : {}),
    Digest: image.unparsed.manifestDigest,
    RepoTags: listTags ? await repoTags(image.source.reference, ctx, signal) : [],
    Created: typeof config.created === 'string' ? config.created : null,
    DockerVersion: stringOrEmpty(stored.docker_version),
    Labels: labels === undefined || labels === null ? null : sortedGoMap(Object.entries(labels).map(([k, v]) => [k, v ?? ''] as const)),
    Architecture: stringOrEmpty(config.architecture),
    Os: stringOrEmpty(config.os),
    Layers: image.layerInfos().map((l) => l.digest),
    Env: config.config?.Env ?? null,
  };
}

/** --signatures: the image's signatures and the verdict; a report shows what it could not read instead of failing on it. */
export async function signatureReport(unparsed: UnparsedImage, ctx: SystemContext, verdict: PolicyVerdict): Promise<SignatureReport> {
  const Policy = verdict.refusal === undefined
    ? { verdict: 'accepted' as const, scope: verdict.scope }
    : { verdict: 'rejected' as const, scope: verdict.scope, reason: verdict.refusal };
  try {
    return { Signatures: await describeSignatures(ctx.policy, unparsed), Policy };
  } catch (err) {
    return { Signatures: [], SignaturesError: errorMessage(err), Policy };
  }
}
