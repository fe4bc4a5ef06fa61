/**
 * An opened image: the full view a session's methods (server/service/methods.ts) and
 * `layerpipe inspect` need, built from a transport's small ImageSource. Resolves a list to
 * one instance, converts Docker manifests to OCI, re-serialises configs, lists layers and
 * opens blob streams (whose bytes the caller verifies, with digest.ts's BlobVerifier).
 */
import { Readable } from 'node:stream';
import type { LayerInfo } from '../../protocol/methods';
import { UnsupportedError } from '../../protocol/errors';
import { ociConfigBytes, ociRuntimeConfigBytes } from './config';
import { dockerToOciManifest } from './convert';
import { parseDigest, sha256Digest, verifyBytes } from './digest';
import {
  isListType, MAX_CONFIG_SIZE, MediaTypes, parseImageManifest, parseManifestList, type ImageManifest,
} from './manifest';
import { chooseInstance, wantedPlatforms } from './platform';
import type { BlobReader, BlobRequest, ImageSource, SystemContext } from './types';
import { manifestTypeOf, type UnparsedImage } from './unparsed';

export class OpenedImage {
  private storedConfigPromise: Promise<Buffer> | undefined;
  private ociManifestPromise: Promise<Buffer> | undefined;

  private constructor(
    readonly source: ImageSource,
    /** The image's lifetime: the reads it makes for itself (its config) stop when it aborts. */
    private readonly signal: AbortSignal,
    /** Digest of the chosen manifest's bytes as stored (the instance, for a list). */
    readonly manifestDigest: string,
    readonly manifestBytes: Buffer,
    readonly manifestType: string,
    /** Digest of the list the reference named, when it named one. */
    readonly listDigest: string | undefined,
  ) {}

  /** Resolves an image whose top-level manifest was read: for a list, picks this platform's instance. Use open.ts. */
  static async resolve(unparsed: UnparsedImage, ctx: SystemContext, signal: AbortSignal): Promise<OpenedImage> {
    const { source, manifest: top, manifestType: topType, manifestDigest: topDigest } = unparsed;
    if (!isListType(topType)) return new OpenedImage(source, signal, topDigest, top.bytes, topType, undefined);
    const list = parseManifestList(top.bytes, topType);
    const instanceDigest = chooseInstance(list, wantedPlatforms(ctx));
    const instance = await source.getManifest(instanceDigest, signal);
    verifyBytes(instance.bytes, instanceDigest, 'manifest');
    const instanceType = manifestTypeOf(instance);
    if (isListType(instanceType)) throw new UnsupportedError('manifest list contains another list as the chosen instance');
    return new OpenedImage(source, signal, instanceDigest, instance.bytes, instanceType, topDigest);
  }

  /** Refuses manifests GetManifest cannot answer for, with skopeo's wording. */
  private requireImageManifest(): ImageManifest {
    switch (this.manifestType) {
      case MediaTypes.ociManifest:
      case MediaTypes.dockerManifest:
        return parseImageManifest(this.manifestBytes, this.manifestType);
      case MediaTypes.dockerSchema1:
      case MediaTypes.dockerSchema1Signed:
        throw new UnsupportedError(`unsupported legacy manifest MIME type: ${this.manifestType}`);
      default:
        throw new UnsupportedError(`unsupported manifest MIME type: ${this.manifestType}`);
    }
  }

  /** The manifest GetManifest hands out: OCI as stored, or Docker schema 2 converted. */
  ociManifest(): Promise<Buffer> {
    this.ociManifestPromise ??= (async () => {
      const m = this.requireImageManifest();
      if (m.mediaType === MediaTypes.ociManifest) return this.manifestBytes;
      return dockerToOciManifest(m, await this.ociConfig());
    })();
    return this.ociManifestPromise;
  }

  /** The config blob as stored, digest-verified. */
  storedConfig(): Promise<Buffer> {
    this.storedConfigPromise ??= (async () => {
      const m = this.requireImageManifest();
      if (m.mediaType === MediaTypes.ociManifest && m.config.mediaType !== MediaTypes.ociConfig) {
        throw new UnsupportedError(`unsupported image-specific operation on artifact with type ${JSON.stringify(m.config.mediaType)}`);
      }
      const blob = await this.source.getBlob({ digest: m.config.digest, size: m.config.size, signal: this.signal });
      const bytes = await readAll(blob.stream, MAX_CONFIG_SIZE, 'image config');
      verifyBytes(bytes, m.config.digest, 'image config');
      return bytes;
    })();
    return this.storedConfigPromise;
  }

  /** GetFullConfig's bytes. */
  async ociConfig(): Promise<Buffer> {
    return ociConfigBytes(await this.storedConfig());
  }

  /** GetConfig's bytes: only the runtime `config` member. */
  async runtimeConfig(): Promise<Buffer> {
    return ociRuntimeConfigBytes(await this.storedConfig());
  }

  /** The layers as the original manifest lists them. */
  layerInfos(): LayerInfo[] {
    return this.requireImageManifest().layers.map((l) => ({ digest: l.digest, size: l.size, media_type: l.mediaType }));
  }

  /**
   * Opens a blob. The config of a converted Docker image is served from memory under the digest
   * the converted manifest gives it, since the source stores only the Docker original.
   */
  async openBlob(request: BlobRequest): Promise<BlobReader> {
    parseDigest(request.digest);
    if (this.manifestType === MediaTypes.dockerManifest) {
      const config = await this.ociConfig().catch(() => undefined);
      if (config !== undefined && sha256Digest(config) === request.digest) {
        return { stream: Readable.from([config]), size: config.length };
      }
    }
    return this.source.getBlob(request);
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

/** Reads a whole stream, refusing more than `limit` bytes. */
export async function readAll(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      stream.destroy();
      throw new UnsupportedError(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

