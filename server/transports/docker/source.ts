/**
 * Opening a docker:// image: registries.conf decides where the name is pulled from (mirrors
 * in order, then the primary location, possibly rewritten; short names searched in
 * unqualified-search-registries), credentials and TLS files are looked up for each place,
 * and the first place that serves the manifest is the image's source from then on.
 */
import { lookupCredentials, type RegistryCredentials } from '../../config/auth';
import { tlsFilesFor } from '../../config/certs-d';
import { loadRegistriesConfig, pullSourcesFor, type PullSource, type RegistriesConfig } from '../../config/registries-conf';
import { CancelledError, ImageNotFoundError, InvalidArgumentError, LayerpipeError, errorMessage } from '../../../protocol/errors';
import { parseDigest, verifyBytes } from '../../image/digest';
import type { ImageSignature } from '../../image/signatures';
import type { BlobReader, BlobRequest, ImageReference, ImageSource, RawManifest, SystemContext } from '../../image/types';
import type { AuthIdentity } from './auth';
import type { RegistryClient } from './client';
import type { TlsSettings } from './http';
import { RegistryPool } from './registry-pool';
import { clientSettings } from './settings';
import {
  endpointHost, manifestSelector, nameOf, parseDockerReference, referenceString, shortRepositoryOf,
  type DockerReference,
} from '../../reference/docker-reference';
import { resolveShortName } from '../../reference/short-names';

/** The credentials for one place to pull from: the command line's only for the registry the user named. */
async function identityFor(
  ctx: SystemContext,
  named: DockerReference,
  physical: DockerReference,
  config: RegistriesConfig,
  signal: AbortSignal,
): Promise<AuthIdentity> {
  const opts = ctx.registry;
  if (opts.noCreds) return { credentials: undefined, registryToken: undefined };
  const sameRegistry = physical.registry === named.registry;
  const registryToken = sameRegistry ? opts.registryToken : undefined;
  if (sameRegistry && opts.credentials !== undefined) {
    const credentials: RegistryCredentials = { kind: 'basic', username: opts.credentials.username, password: opts.credentials.password };
    return { credentials, registryToken };
  }
  const credentials = await lookupCredentials(
    { registry: physical.registry, repository: physical.repository },
    { authFile: opts.authFile, credentialHelpers: config.credentialHelpers, logger: ctx.log, readOnceFiles: RegistryPool.of(ctx).authFiles, signal },
  );
  return { credentials, registryToken };
}

export function checkRegistryOptions(ctx: SystemContext): void {
  const opts = ctx.registry;
  if (opts.credentials !== undefined && opts.credentials.username === '') {
    throw new InvalidArgumentError('a registry password was given without a user name (--password needs --username)');
  }
}

/** "host/repo:tag" or "host/repo@digest", as registries.conf prefixes are matched against. */
function pullName(ref: DockerReference): string {
  return ref.digest !== undefined ? `${nameOf(ref)}@${ref.digest}` : `${nameOf(ref)}:${ref.tag ?? 'latest'}`;
}

function physicalReference(source: PullSource, named: DockerReference): DockerReference {
  const parsed = parseDockerReference(source.name);
  // Keep what the user asked for: a tag next to a digest is informational.
  return { ...parsed, tag: named.tag, digest: named.digest ?? parsed.digest };
}

interface Attempt {
  readonly name: string;
  readonly error: unknown;
}

export interface OpenedSource {
  /**
   * The fully-qualified reference the image was found under: a short name's alias target or
   * search registry, else the reference as given. It is the image's identity for the policy
   * (scopes and signed identities), as it is for containers tools that resolve short names.
   */
  readonly named: DockerReference;
  readonly client: RegistryClient;
  readonly physical: DockerReference;
  readonly manifest: RawManifest;
}

/**
 * The client for the registry `physical` names, with the credentials and TLS files for it
 * (`named` is what the user asked for: command-line credentials apply to its registry only).
 */
export async function registryClientFor(
  ctx: SystemContext, named: DockerReference, physical: DockerReference, insecure: boolean, config: RegistriesConfig, signal: AbortSignal,
): Promise<RegistryClient> {
  const identity = await identityFor(ctx, named, physical, config, signal);
  const files = await tlsFilesFor(physical.registry, { certDir: ctx.registry.certDir });
  const verify = ctx.registry.tlsVerify ?? !insecure;
  const tls: TlsSettings = { verify, ca: files.ca, cert: files.cert, key: files.key };
  const endpoint = { registry: physical.registry, host: endpointHost(physical.registry), tls, allowHttp: !verify };
  return RegistryPool.of(ctx).client(endpoint, identity, clientSettings(ctx));
}

async function openAt(ctx: SystemContext, named: DockerReference, source: PullSource, config: RegistriesConfig, signal: AbortSignal): Promise<OpenedSource> {
  const physical = physicalReference(source, named);
  const client = await registryClientFor(ctx, named, physical, source.insecure, config, signal);
  const manifest = physical.digest !== undefined
    ? await manifestByDigest(ctx, client, physical, physical.digest, signal)
    : await client.getManifest(physical.repository, manifestSelector(physical), signal);
  return { named, client, physical, manifest };
}

/**
 * The one way a manifest is read by digest: from the pool's cache (shared by a service's
 * sessions), else from the registry, verified, then cached.
 */
async function manifestByDigest(ctx: SystemContext, client: RegistryClient, physical: DockerReference, digest: string, signal: AbortSignal): Promise<RawManifest> {
  const cache = RegistryPool.of(ctx).manifests;
  const cached = cache.get(client, physical.repository, digest);
  if (cached !== undefined) {
    ctx.log.debug(`manifest ${digest} of ${nameOf(physical)}: cached`);
    return cached;
  }
  const manifest = await client.getManifest(physical.repository, digest, signal);
  verifyBytes(manifest.bytes, digest, `manifest ${digest} from ${nameOf(physical)}`);
  cache.putVerified(client, physical.repository, digest, manifest);
  return manifest;
}

/** Tries mirrors then the primary; the error of the primary (its class too) decides, with the mirrors' noted. */
async function openNamed(ctx: SystemContext, named: DockerReference, config: RegistriesConfig, signal: AbortSignal): Promise<OpenedSource> {
  const sources = pullSourcesFor(config, pullName(named), named.digest !== undefined ? 'digest' : 'tag');
  const attempts: Attempt[] = [];
  for (const source of sources) {
    ctx.log.debug(`trying to access ${source.name}${source.mirror ? ' (mirror)' : ''}`);
    try {
      return await openAt(ctx, named, source, config, signal);
    } catch (error) {
      // Cancelled: the next mirror would be cancelled too; say so, not "all mirrors failed".
      if (signal.aborted) throw error instanceof CancelledError ? error : new CancelledError(`accessing ${source.name}: cancelled`, { cause: error });
      ctx.log.debug(`accessing ${source.name} failed: ${errorMessage(error)}`);
      attempts.push({ name: source.name, error });
    }
  }
  const primary = attempts[attempts.length - 1]!;
  if (attempts.length === 1) throw primary.error;
  const mirrors = attempts.slice(0, -1).map((a) => `[${a.name}: ${errorMessage(a.error)}]`).join(' ');
  throw rewrap(primary.error, `(mirrors also failed: ${mirrors}): ${primary.name}: ${errorMessage(primary.error)}`);
}

/** Same error class, new message. */
function rewrap(err: unknown, message: string): Error {
  if (err instanceof LayerpipeError) {
    const Ctor = err.constructor as new (message: string, options?: { cause?: unknown }) => LayerpipeError;
    return new Ctor(message, { cause: err });
  }
  return new LayerpipeError(message, { cause: err });
}

/** Opens the image a docker reference names, wherever registries.conf says to look. */
export async function openDockerImage(ctx: SystemContext, ref: DockerReference, signal: AbortSignal): Promise<OpenedSource> {
  checkRegistryOptions(ctx);
  const config = await loadRegistriesConfig({ path: ctx.registry.registriesConf });
  // An alias, or the unqualified-search-registries as short-name-mode allows (server/reference/short-names.ts).
  const candidates = resolveShortName(ref, config);
  if (candidates.length === 1) return openNamed(ctx, candidates[0]!, config, signal);

  const attempts: Attempt[] = [];
  for (const candidate of candidates) {
    try {
      return await openNamed(ctx, candidate, config, signal);
    } catch (error) {
      // Cancelled: the other registries are not asked, and the error says so rather than "not found".
      if (signal.aborted) throw error;
      attempts.push({ name: referenceString(candidate), error });
    }
  }
  const summary = attempts.map((a) => `[${a.name}: ${errorMessage(a.error)}]`).join(' ');
  // "Not found" only when every registry said so; an unreachable one might have had it.
  const other = attempts.find((a) => !(a.error instanceof ImageNotFoundError));
  if (other === undefined) throw new ImageNotFoundError(`${shortRepositoryOf(ref)}: not found in any of the unqualified-search-registries: ${summary}`);
  throw rewrap(other.error, `${shortRepositoryOf(ref)}: not found in the unqualified-search-registries that answered, and not all of them could be asked: ${summary}`);
}

/** The source of an opened docker image: manifests and blobs from the place it was found. */
export class DockerImageSource implements ImageSource {
  constructor(
    readonly reference: ImageReference,
    private readonly opened: OpenedSource,
    private readonly ctx: SystemContext,
  ) {}

  /** The place the image is read from ("host/repo"), after mirrors and rewrites. */
  get physicalName(): string {
    return nameOf(this.opened.physical);
  }

  async getManifest(instanceDigest: string | undefined, signal: AbortSignal): Promise<RawManifest> {
    if (instanceDigest === undefined) return this.opened.manifest;
    parseDigest(instanceDigest);
    return manifestByDigest(this.ctx, this.opened.client, this.opened.physical, instanceDigest, signal);
  }

  async getBlob(request: BlobRequest): Promise<BlobReader> {
    parseDigest(request.digest);
    return this.opened.client.getBlob(this.opened.physical.repository, request.digest, request.signal, request.range);
  }

  /** Signatures of the place the image is read from (source-signatures.ts, loaded when first asked). */
  async getSignatures(instanceDigest: string | undefined, signal: AbortSignal): Promise<ImageSignature[]> {
    const { readDockerSignatures } = require('./source-signatures') as typeof import('./source-signatures');
    return readDockerSignatures(this.ctx, this.opened, instanceDigest, signal);
  }

  async close(): Promise<void> {
    // Connections belong to the context's RegistryPool, and requests stop with the image's signal: nothing else to release.
  }
}
