/**
 * An opened image: the full view a session's methods (server/service/methods*.ts) and
 * `layerpipe inspect` need, built from a transport's small ImageSource. Keeps the manifest the
 * reference names (a list, for a multi-arch image) and resolves a list to one instance, whose
 * derived views (OCI manifest, configs, layers, blobs) live in instance.ts. Other instances of
 * the list are made on request, each once.
 */
import type { LayerInfo } from '../../protocol/methods';
import { PlatformNotFoundError, UnsupportedError } from '../../protocol/errors';
import { verifyBytes } from './digest';
import { ImageInstance } from './instance';
import { isListType, parseManifestList, type ManifestList } from './manifest';
import { chooseInstance, findPlatformInstance, platformText, wantedPlatforms } from './platform';
import type { BlobReader, BlobRequest, ImageSource, Platform, SystemContext } from './types';
import { manifestTypeOf, type UnparsedImage } from './unparsed';

export { readAll } from './instance';

/** The manifest the reference names, exactly as stored. */
export interface TopManifest {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly mediaType: string;
}

/** One entry of the top-level list. */
export interface ListedInstance {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  readonly platform: Platform | undefined;
}

/** A platform a client names: os and architecture, and a variant if it cares. */
export interface PlatformChoice {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string | undefined;
}

export class OpenedImage {
  /** Instances other than the chosen one, by digest, kept once read (a list has a bounded number). */
  private readonly others = new Map<string, ImageInstance>();

  private constructor(
    /** The image before resolution: the top-level manifest and its signatures (read once). */
    readonly unparsed: UnparsedImage,
    private readonly signal: AbortSignal,
    readonly top: TopManifest,
    /** The instance OpenImage chose (the top manifest itself when it is not a list). */
    readonly chosen: ImageInstance,
  ) {}

  /** Resolves an image whose top-level manifest was read: for a list, picks this platform's instance. Use open.ts. */
  static async resolve(unparsed: UnparsedImage, ctx: SystemContext, signal: AbortSignal): Promise<OpenedImage> {
    const { source, manifest, manifestType, manifestDigest } = unparsed;
    const top: TopManifest = { digest: manifestDigest, bytes: manifest.bytes, mediaType: manifestType };
    if (!isListType(manifestType)) return new OpenedImage(unparsed, signal, top, new ImageInstance(source, signal, manifestDigest, manifest.bytes, manifestType));
    const list = parseManifestList(manifest.bytes, manifestType);
    const instance = await readInstance(source, signal, chooseInstance(list, wantedPlatforms(ctx)));
    return new OpenedImage(unparsed, signal, top, instance);
  }

  get source(): ImageSource {
    return this.unparsed.source;
  }

  /** Digest of the chosen manifest's bytes as stored (the instance, for a list). */
  get manifestDigest(): string {
    return this.chosen.digest;
  }

  get manifestBytes(): Buffer {
    return this.chosen.bytes;
  }

  get manifestType(): string {
    return this.chosen.mediaType;
  }

  /** Digest of the list the reference named, when it named one. */
  get listDigest(): string | undefined {
    return isListType(this.top.mediaType) ? this.top.digest : undefined;
  }

  /** The top-level list, or undefined for a single image. */
  private list(): ManifestList | undefined {
    return isListType(this.top.mediaType) ? parseManifestList(this.top.bytes, this.top.mediaType) : undefined;
  }

  /** The entries of the top-level list (none for a single image). */
  instances(): ListedInstance[] {
    return (this.list()?.manifests ?? []).map((d) => ({ digest: d.digest, mediaType: d.mediaType, size: d.size, platform: d.platform }));
  }

  /**
   * The instance for a platform a client names: the list's entry for it (read and verified,
   * then kept), or, for a single image, the image itself when its config says it is for that
   * platform. PlatformNotFoundError otherwise. `signal` (the request's) aborts the read, which
   * is why reads in flight are not shared between requests.
   */
  async instanceFor(platform: PlatformChoice, signal: AbortSignal): Promise<ImageInstance> {
    const list = this.list();
    if (list === undefined) {
      await this.requireSinglePlatform(platform);
      return this.chosen;
    }
    return this.instanceByDigest(findPlatformInstance(list, platform), signal);
  }

  /** The instance of the top-level list with this digest (read and verified, then kept), or the chosen one. */
  async instanceByDigest(digest: string, signal: AbortSignal): Promise<ImageInstance> {
    if (digest === this.chosen.digest) return this.chosen;
    const known = this.others.get(digest);
    if (known !== undefined) return known;
    const instance = await readInstance(this.source, AbortSignal.any([this.signal, signal]), digest, this.signal);
    this.others.set(digest, instance);
    return instance;
  }

  /** A single image answers for one platform only: the one its config declares. */
  private async requireSinglePlatform(wanted: PlatformChoice): Promise<void> {
    const config = JSON.parse((await this.chosen.storedConfig()).toString('utf8')) as { os?: unknown; architecture?: unknown; variant?: unknown };
    const has = {
      os: typeof config.os === 'string' ? config.os : '',
      architecture: typeof config.architecture === 'string' ? config.architecture : '',
      variant: typeof config.variant === 'string' ? config.variant : '',
    };
    const matches = has.os === wanted.os && has.architecture === wanted.architecture && (wanted.variant === undefined || wanted.variant === has.variant);
    if (!matches) {
      throw new PlatformNotFoundError(`the image is not a list but a single image for ${platformText(has)}: it has no image for ${platformText(wanted)}`);
    }
  }

  /** The manifest GetManifest hands out: OCI as stored, or Docker schema 2 converted. */
  ociManifest(): Promise<Buffer> {
    return this.chosen.ociManifest();
  }

  /** The config blob as stored, digest-verified. */
  storedConfig(): Promise<Buffer> {
    return this.chosen.storedConfig();
  }

  /** GetFullConfig's bytes. */
  ociConfig(): Promise<Buffer> {
    return this.chosen.ociConfig();
  }

  /** GetConfig's bytes: only the runtime `config` member. */
  runtimeConfig(): Promise<Buffer> {
    return this.chosen.runtimeConfig();
  }

  /** The layers as the original manifest lists them. */
  layerInfos(): LayerInfo[] {
    return this.chosen.layerInfos();
  }

  /** Opens a blob of the chosen instance (see ImageInstance.openBlob). */
  openBlob(request: BlobRequest): Promise<BlobReader> {
    return this.chosen.openBlob(request);
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

/**
 * Reads one instance of a list, verified against its digest; a list inside a list is refused.
 * `lifetime` is the image's, for the reads the instance makes later (its config).
 */
async function readInstance(source: ImageSource, signal: AbortSignal, digest: string, lifetime: AbortSignal = signal): Promise<ImageInstance> {
  const instance = await source.getManifest(digest, signal);
  verifyBytes(instance.bytes, digest, 'manifest');
  const mediaType = manifestTypeOf(instance);
  if (isListType(mediaType)) throw new UnsupportedError('manifest list contains another list as the chosen instance');
  return new ImageInstance(source, lifetime, digest, instance.bytes, mediaType);
}
