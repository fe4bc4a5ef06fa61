/**
 * Choosing one instance of a manifest list for this machine or the --override-* flags, with
 * the same order of preference containers/image uses (variant fallbacks for arm).
 */
import { readFileSync } from 'node:fs';
import { PlatformNotFoundError } from '../../protocol/errors';
import { MediaTypes, type ManifestList } from './manifest';
import type { SystemContext } from './types';

const NODE_TO_OCI_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x',
  riscv64: 'riscv64', mips: 'mips', mipsel: 'mipsle', loong64: 'loong64',
};
const NODE_TO_OCI_OS: Readonly<Record<string, string>> = { win32: 'windows' };

/** Variants an image may have that still run on a CPU of the given architecture, best first. */
const VARIANT_COMPATIBILITY: Readonly<Record<string, readonly string[]>> = {
  arm: ['v8', 'v7', 'v6', 'v5'],
  arm64: ['v8'],
};

export interface WantedPlatform {
  readonly os: string;
  readonly architecture: string;
  readonly variant: string;
}

function cpuArchitectureVariant(): string {
  let text: string;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
  const line = text.split('\n').find((l) => l.split(':')[0]?.trim().toLowerCase() === 'cpu architecture');
  const value = line?.split(':')[1]?.trim().toLowerCase() ?? '';
  if (value === '8' || value === 'aarch64') return 'v8';
  if (value === '7' || value === '7m' || /^\?\(1[2-7]\)$/.test(value)) return 'v7';
  if (value === '6' || value === '6tej') return 'v6';
  if (['5', '5t', '5te', '5tej'].includes(value)) return 'v5';
  if (value === '4' || value === '4t') return 'v4';
  if (value === '3') return 'v3';
  return '';
}

/** The platforms acceptable for this run, most preferred first. */
export function wantedPlatforms(ctx: Pick<SystemContext, 'osChoice' | 'architectureChoice' | 'variantChoice'>): WantedPlatform[] {
  const hostArch = NODE_TO_OCI_ARCH[process.arch] ?? process.arch;
  const architecture = ctx.architectureChoice !== '' ? ctx.architectureChoice : hostArch;
  let variant = '';
  if (ctx.architectureChoice === '' && (hostArch === 'arm' || hostArch === 'arm64')) variant = cpuArchitectureVariant();
  if (ctx.variantChoice !== '') variant = ctx.variantChoice;
  const os = ctx.osChoice !== '' ? ctx.osChoice : (NODE_TO_OCI_OS[process.platform] ?? process.platform);

  let variants: string[];
  const compatible = VARIANT_COMPATIBILITY[architecture];
  if (variant !== '') {
    const at = compatible?.indexOf(variant) ?? -1;
    variants = at >= 0 ? compatible!.slice(at) : [variant];
    variants.push('');
  } else {
    variants = ['', ...(compatible ?? [])];
  }
  return variants.map((v) => ({ os, architecture, variant: v }));
}

/** The digest of the list entry to use. */
export function chooseInstance(list: ManifestList, wanted: readonly WantedPlatform[]): string {
  for (const w of wanted) {
    for (const d of list.manifests) {
      const p = d.platform;
      if (p === undefined) continue;
      if (p.architecture === w.architecture && p.os === w.os && (p.variant ?? '') === w.variant) return d.digest;
    }
  }
  // An OCI index may hold entries with no platform at all (artifacts): the first one serves.
  if (list.mediaType === MediaTypes.ociIndex) {
    const anyPlatform = list.manifests.find((d) => d.platform === undefined);
    if (anyPlatform !== undefined) return anyPlatform.digest;
  }
  const first = wanted[0]!;
  const kind = list.mediaType === MediaTypes.ociIndex ? 'image index' : 'manifest list';
  throw new PlatformNotFoundError(
    `no image found in ${kind} for architecture ${first.architecture}, variant ${JSON.stringify(first.variant)}, OS ${first.os}`,
  );
}

/** "os/architecture[/variant]", for messages. */
export function platformText(p: { readonly os: string; readonly architecture: string; readonly variant?: string | undefined }): string {
  return `${p.os}/${p.architecture}${p.variant !== undefined && p.variant !== '' ? `/${p.variant}` : ''}`;
}

/**
 * The entry of a list for a platform a client names (GetManifest's `platform`): os and
 * architecture must match, and the variant too when one is named; with none named, an entry
 * without a variant is preferred, then the architecture's variants best first. Unlike
 * chooseInstance, no entry without a platform stands in. PlatformNotFoundError lists what the
 * list has.
 */
export function findPlatformInstance(list: ManifestList, wanted: { readonly os: string; readonly architecture: string; readonly variant?: string | undefined }): string {
  const variants = wanted.variant !== undefined ? [wanted.variant] : ['', ...(VARIANT_COMPATIBILITY[wanted.architecture] ?? [])];
  for (const variant of variants) {
    const match = list.manifests.find((d) => d.platform?.os === wanted.os && d.platform.architecture === wanted.architecture && (d.platform.variant ?? '') === variant);
    if (match !== undefined) return match.digest;
  }
  if (wanted.variant === undefined) {
    const anyVariant = list.manifests.find((d) => d.platform?.os === wanted.os && d.platform.architecture === wanted.architecture);
    if (anyVariant !== undefined) return anyVariant.digest;
  }
  const kind = list.mediaType === MediaTypes.ociIndex ? 'image index' : 'manifest list';
  const available = list.manifests.map((d) => (d.platform === undefined ? '(no platform)' : platformText(d.platform)));
  throw new PlatformNotFoundError(`no image for ${platformText(wanted)} in the ${kind}; it has ${available.length === 0 ? 'no entries' : available.join(', ')}`);
}
