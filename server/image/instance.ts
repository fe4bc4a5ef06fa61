/**
 * One image manifest (OCI or Docker schema 2) of an opened image, with everything derived from
 * it: the OCI manifest GetManifest hands out (converted from Docker), the config as stored and
 * re-serialised, the layers, the sizes it lists, and its blobs. An OpenedImage has the one
 * chosen at OpenImage, and makes others on request (another platform of a list).
 */
import type { Readable } from 'node:stream';
import type { LayerInfo } from '../../protocol/methods';
import { UnsupportedError } from '../../protocol/errors';
import { ociConfigBytes, ociRuntimeConfigBytes } from './config';
import { dockerToOciManifest } from './convert';
import { parseDigest, sha256Digest, verifyBytes } from './digest';
import { MAX_CONFIG_SIZE, MediaTypes, parseImageManifest, type ImageManifest } from './manifest';
import { bufferRange } from './range';
import type { BlobReader, BlobRequest, ImageSource } from './types';

export class ImageInstance {
  private storedConfigPromise: Promise<Buffer> | undefined;
  private ociManifestPromise: Promise<Buffer> | undefined;

  constructor(
    private readonly source: ImageSource,
    /** The image's lifetime: the reads it makes for itself (its config) stop when it aborts. */
    private readonly signal: AbortSignal,
    /** Digest of the manifest's bytes as stored. */
    readonly digest: string,
    readonly bytes: Buffer,
    readonly mediaType: string,
  ) {}

  /** Refuses manifests GetManifest cannot answer for, with skopeo's wording. */
  private requireImageManifest(): ImageManifest {
    switch (this.mediaType) {
      case MediaTypes.ociManifest:
      case MediaTypes.dockerManifest:
        return parseImageManifest(this.bytes, this.mediaType);
      case MediaTypes.dockerSchema1:
      case MediaTypes.dockerSchema1Signed:
        throw new UnsupportedError(`unsupported legacy manifest MIME type: ${this.mediaType}`);
      default:
        throw new UnsupportedError(`unsupported manifest MIME type: ${this.mediaType}`);
    }
  }

  /** The manifest GetManifest hands out: OCI as stored, or Docker schema 2 converted. */
  ociManifest(): Promise<Buffer> {
    this.ociManifestPromise ??= (async () => {
      const m = this.requireImageManifest();
      if (m.mediaType === MediaTypes.ociManifest) return this.bytes;
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
   * The size the manifest lists for a blob (a layer, the config, or the converted config of a
   * Docker image), or undefined when it lists none for that digest.
   */
  async listedSize(digest: string): Promise<number | undefined> {
    let m: ImageManifest;
    try {
      m = this.requireImageManifest();
    } catch {
      return undefined;
    }
    const listed = [m.config, ...m.layers].find((d) => d.digest === digest && d.size >= 0);
    if (listed !== undefined) return listed.size;
    const converted = await this.convertedConfig();
    return converted !== undefined && sha256Digest(converted) === digest ? converted.length : undefined;
  }

  /** A Docker image's config re-serialised for OCI (the converted manifest names it); undefined for others or when unreadable. */
  private async convertedConfig(): Promise<Buffer | undefined> {
    if (this.mediaType !== MediaTypes.dockerManifest) return undefined;
    return this.ociConfig().catch(() => undefined);
  }

  /**
   * Opens a blob (or a range of it). The config of a converted Docker image is served from
   * memory under the digest the converted manifest gives it, since the source stores only the
   * Docker original.
   */
  async openBlob(request: BlobRequest): Promise<BlobReader> {
    parseDigest(request.digest);
    const config = await this.convertedConfig();
    if (config !== undefined && sha256Digest(config) === request.digest) return bufferRange(config, request.range, `blob ${request.digest}`);
    return this.source.getBlob(request);
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
