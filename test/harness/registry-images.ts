/**
 * Puts test images into a test registry with real skopeo: builds an OCI layout with
 * oci-builder.ts and runs `skopeo copy oci:… docker://…`, as OCI, as Docker schema 2
 * (--format v2s2), or as a multi-arch list (--all). Also the flags and runner to read images
 * back with skopeo (`inspect`), the conformance oracle.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeImageBlobs, writeIndexBlob, writeLayoutIndex, type ImageSpec, type WrittenManifest } from './oci-builder';
import type { RunningRegistry } from './registry';

const execFileAsync = promisify(execFile);

export type PushFormat = 'oci' | 'v2s2';

/** Credentials for a skopeo call: the registry's own (default), others, or none. */
export type CredsChoice = 'registry' | 'none' | string;

let emptyAuthFile: string | undefined;

/**
 * skopeo reads ~/.docker/config.json and $XDG_RUNTIME_DIR/containers/auth.json unless told
 * otherwise; the tests point it at an empty auth file so that a developer's logins never leak in.
 */
export function emptyAuthFilePath(): string {
  if (emptyAuthFile === undefined) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-noauth-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    emptyAuthFile = path.join(dir, 'auth.json');
    writeFileSync(emptyAuthFile, '{"auths":{}}\n');
  }
  return emptyAuthFile;
}

function credsFor(registry: RunningRegistry, creds: CredsChoice): string | undefined {
  if (creds === 'none') return undefined;
  if (creds === 'registry') return registry.creds;
  return creds;
}

/**
 * Flags that make skopeo reach this registry: TLS through the test CA or no TLS verification,
 * and credentials. `prefix` is "dest-" or "src-" for `skopeo copy`, "" for inspect.
 */
export function skopeoRegistryFlags(registry: RunningRegistry, prefix: '' | 'src-' | 'dest-', creds: CredsChoice = 'registry'): string[] {
  const flags = registry.certDir !== undefined ? [`--${prefix}cert-dir`, registry.certDir] : [`--${prefix}tls-verify=false`];
  const user = credsFor(registry, creds);
  if (user !== undefined) flags.push(`--${prefix}creds`, user);
  else flags.push(`--${prefix}authfile`, emptyAuthFilePath());
  return flags;
}

export interface SkopeoResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface SkopeoRunOptions {
  readonly timeoutMs?: number;
  /** Added to the environment (PATH for credential helpers…). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Runs skopeo; rejects with its stderr in the message. */
export async function skopeo(args: readonly string[], opts: SkopeoRunOptions = {}): Promise<SkopeoResult> {
  try {
    const env = { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath(), ...opts.env };
    const { stdout, stderr } = await execFileAsync('skopeo', args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env });
    return { stdout, stderr };
  } catch (err) {
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String((err as { stderr: unknown }).stderr) : '';
    const error = new Error(`skopeo ${args.join(' ')} failed: ${stderr.trim() || String(err)}`);
    (error as Error & { stderr: string }).stderr = stderr;
    throw error;
  }
}

export const sha256Of = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface PushedImage {
  /** "repo/name:tag" inside the registry. */
  readonly repoAndTag: string;
  /** docker://host:port/repo/name:tag */
  readonly ref: string;
  /** Digest of the manifest (or list) as the registry stores it. */
  readonly manifestDigest: string;
  /** The manifest (or list) bytes as the registry serves them. */
  readonly manifest: Buffer;
  readonly mediaType: string;
}

export interface PushedSingleImage extends PushedImage {
  readonly spec: ImageSpec;
  /** The config blob as pushed (skopeo copies it unchanged, also into v2s2). */
  readonly config: Buffer;
}

export interface PushedMultiArch extends PushedImage {
  /** Per platform: the instance's digest and manifest as stored. */
  readonly instances: readonly { readonly platform: Platform; readonly digest: string; readonly manifest: Buffer; readonly spec: ImageSpec }[];
}

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface PushOptions {
  readonly format?: PushFormat;
  readonly creds?: CredsChoice;
}

async function withLayout<T>(fn: (layoutDir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-push-'));
  try {
    return await fn(path.join(dir, 'layout'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function copyToRegistry(registry: RunningRegistry, source: string, repoAndTag: string, extra: readonly string[], creds: CredsChoice): Promise<string> {
  return withTempFile(async (digestFile) => {
    await skopeo(['--insecure-policy', 'copy', '--quiet', ...extra, '--digestfile', digestFile, ...skopeoRegistryFlags(registry, 'dest-', creds), source, registry.ref(repoAndTag)]);
    return readFileSync(digestFile, 'utf8').trim();
  });
}

async function withTempFile<T>(fn: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-tmp-'));
  try {
    return await fn(path.join(dir, 'file'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bytes the registry serves for a reference (tag or digest), read through skopeo. */
export async function rawManifest(registry: RunningRegistry, repoAndRef: string, creds: CredsChoice = 'registry'): Promise<Buffer> {
  const { stdout } = await skopeo(['inspect', '--raw', ...skopeoRegistryFlags(registry, '', creds), registry.ref(repoAndRef)]);
  return Buffer.from(stdout, 'utf8');
}

/** Pushes one image; `format` "v2s2" makes skopeo convert it to Docker schema 2. */
export async function pushImage(registry: RunningRegistry, repoAndTag: string, spec: ImageSpec, opts: PushOptions = {}): Promise<PushedSingleImage> {
  const creds = opts.creds ?? 'registry';
  return withLayout(async (layoutDir) => {
    const written = writeImageBlobs(layoutDir, spec);
    writeLayoutIndex(layoutDir, [{ manifest: written, refName: 'src' }]);
    const format = opts.format ?? 'oci';
    const digest = await copyToRegistry(registry, `oci:${layoutDir}:src`, repoAndTag, ['--format', format], creds);
    const manifest = await rawManifest(registry, repoAndTag, creds);
    if (sha256Of(manifest) !== digest) throw new Error(`registry serves ${repoAndTag} with digest ${sha256Of(manifest)}, skopeo pushed ${digest}`);
    const mediaType = (JSON.parse(manifest.toString('utf8')) as { mediaType?: string }).mediaType ?? '';
    return { repoAndTag, ref: registry.ref(repoAndTag), manifestDigest: digest, manifest, mediaType, spec, config: written.config };
  });
}

/**
 * Pushes a multi-arch image: one instance per platform under an OCI index, copied with --all.
 * With format "v2s2" skopeo converts the index to a Docker manifest list and every instance to
 * Docker schema 2 (an OCI layout cannot name a Docker list in its index.json for skopeo).
 */
export async function pushMultiArch(
  registry: RunningRegistry,
  repoAndTag: string,
  instances: readonly { readonly platform: Platform; readonly spec: ImageSpec }[],
  opts: PushOptions = {},
): Promise<PushedMultiArch> {
  const creds = opts.creds ?? 'registry';
  return withLayout(async (layoutDir) => {
    const written: { platform: Platform; manifest: WrittenManifest; spec: ImageSpec }[] = instances.map((i) => ({
      platform: i.platform,
      spec: i.spec,
      manifest: writeImageBlobs(layoutDir, { ...i.spec, os: i.platform.os, architecture: i.platform.architecture, variant: i.platform.variant }),
    }));
    const list = writeIndexBlob(layoutDir, written.map((w) => ({ manifest: w.manifest, platform: { ...w.platform } })));
    writeLayoutIndex(layoutDir, [{ manifest: list, refName: 'src' }]);
    const digest = await copyToRegistry(registry, `oci:${layoutDir}:src`, repoAndTag, ['--all', '--format', opts.format ?? 'oci'], creds);
    const manifest = await rawManifest(registry, repoAndTag, creds);
    if (sha256Of(manifest) !== digest) throw new Error(`registry serves ${repoAndTag} with digest ${sha256Of(manifest)}, skopeo pushed ${digest}`);
    const parsed = JSON.parse(manifest.toString('utf8')) as { mediaType?: string; manifests: { digest: string; platform?: Platform }[] };
    const repo = repoAndTag.replace(/:[^:/]+$/, '');
    const stored = await Promise.all(
      written.map(async (w) => {
        const entry = parsed.manifests.find((m) => m.platform?.architecture === w.platform.architecture && m.platform?.os === w.platform.os && m.platform?.variant === w.platform.variant);
        if (entry === undefined) throw new Error(`pushed list lacks ${w.platform.os}/${w.platform.architecture}`);
        return { platform: w.platform, digest: entry.digest, manifest: await rawManifest(registry, `${repo}@${entry.digest}`, creds), spec: w.spec };
      }),
    );
    return { repoAndTag, ref: registry.ref(repoAndTag), manifestDigest: digest, manifest, mediaType: parsed.mediaType ?? '', instances: stored };
  });
}

/** `skopeo inspect` (parsed JSON) of an image in the registry. */
export async function skopeoInspect(registry: RunningRegistry, repoAndRef: string, extra: readonly string[] = [], creds: CredsChoice = 'registry'): Promise<unknown> {
  const { stdout } = await skopeo(['inspect', ...extra, ...skopeoRegistryFlags(registry, '', creds), registry.ref(repoAndRef)]);
  return JSON.parse(stdout) as unknown;
}
