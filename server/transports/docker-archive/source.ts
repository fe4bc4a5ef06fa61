/**
 * An image of a `docker save` / `podman save` archive, presented as skopeo presents it: a
 * Docker schema 2 manifest generated from manifest.json and the config, whose layers are named
 * by their diff IDs (the digests of the uncompressed tars) with the sizes of the uncompressed
 * tars. skopeo gives them the media type "application/vnd.docker.image.rootfs.diff.tar.gzip"
 * although the bytes served are uncompressed; layerpipe answers the same, so that the manifest
 * digest and every GetManifest/GetLayerInfo answer agree with skopeo's.
 *
 * Layer tars stored compressed (some tools gzip them) are decompressed when served, so their
 * bytes match the diff ID; finding their uncompressed size means decompressing each one once
 * when the image is opened, as skopeo does.
 */
import { pipeline, Readable } from 'node:stream';
import { BlobNotFoundError, UnsupportedError } from '../../../protocol/errors';
import { parseDigest, sha256Digest } from '../../image/digest';
import { MAX_CONFIG_SIZE, MediaTypes } from '../../image/manifest';
import { bufferRange, rangeWithin, skipAndTake } from '../../image/range';
import type { BlobReader, BlobRequest, ImageReference, ImageSource, RawManifest } from '../../image/types';
import { requireGzipOrNone } from '../archive/compression';
import type { TarArchive } from '../archive/tar-archive';
import type { TarEntry } from '../archive/tar-index';
import { chooseItem, MAX_TAR_MANIFEST_SIZE, parseTarManifest, type ImageSelector, type TarManifestItem } from './tar-manifest';

export const MANIFEST_FILE = 'manifest.json';

interface ArchiveLayer {
  readonly entry: TarEntry;
  readonly gzipped: boolean;
  /** Uncompressed size: what GetBlob serves. */
  readonly size: number;
}

/** rootfs.diff_ids of the config, decoded as Go would (key "rootfs" matched in any case). */
function configDiffIds(configBytes: Buffer, configPath: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(configBytes.toString('utf8'));
  } catch (err) {
    throw new UnsupportedError(`decoding tar config ${configPath}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UnsupportedError(`decoding tar config ${configPath}: not a JSON object`);
  }
  const key = Object.keys(parsed).find((k) => k.toLowerCase() === 'rootfs');
  const rootfs = key === undefined ? undefined : (parsed as Record<string, unknown>)[key];
  if (typeof rootfs !== 'object' || rootfs === null || Array.isArray(rootfs)) {
    throw new UnsupportedError(`Invalid image config (rootFS is not set): ${configPath}`);
  }
  const diffIds = (rootfs as Record<string, unknown>).diff_ids ?? null;
  if (diffIds === null) return [];
  if (!Array.isArray(diffIds)) throw new UnsupportedError(`decoding tar config ${configPath}: rootfs.diff_ids is not an array`);
  return diffIds.map((d, i) => {
    if (typeof d !== 'string') throw new UnsupportedError(`decoding tar config ${configPath}: rootfs.diff_ids[${i}] is not a string`);
    try {
      return parseDigest(d).value;
    } catch (err) {
      throw new UnsupportedError(`decoding tar config ${configPath}: rootfs.diff_ids[${i}]: ${(err as Error).message}`);
    }
  });
}

/** Counts the bytes of a stream. */
async function countBytes(stream: Readable): Promise<number> {
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) total += chunk.length;
  return total;
}

/** The generated manifest, serialised with the members and order of containers/image's Go struct. */
function schema2ManifestBytes(config: { size: number; digest: string }, layers: readonly { size: number; digest: string }[]): Buffer {
  const descriptor = (mediaType: string, d: { size: number; digest: string }) =>
    `{"mediaType":${JSON.stringify(mediaType)},"size":${d.size},"digest":${JSON.stringify(d.digest)}}`;
  const body =
    `{"schemaVersion":2,"mediaType":${JSON.stringify(MediaTypes.dockerManifest)},` +
    `"config":${descriptor(MediaTypes.dockerConfig, config)},` +
    `"layers":[${layers.map((l) => descriptor(MediaTypes.dockerLayerGzip, l)).join(',')}]}`;
  return Buffer.from(body, 'utf8');
}

export class DockerArchiveSource implements ImageSource {
  private constructor(
    readonly reference: ImageReference,
    private readonly archive: TarArchive,
    private readonly configBytes: Buffer,
    private readonly configDigest: string,
    private readonly layers: ReadonlyMap<string, ArchiveLayer>,
    private readonly manifestBytes: Buffer,
  ) {}

  /** Reads manifest.json, picks the image, reads its config and sizes its layers. Takes over `archive`. */
  static async open(reference: ImageReference, archive: TarArchive, selector: ImageSelector): Promise<DockerArchiveSource> {
    try {
      if (archive.index.get(MANIFEST_FILE) === undefined) {
        throw new UnsupportedError(`archive ${archive.file} has no ${MANIFEST_FILE}: not a docker save archive, or one from before Docker 1.10, which skopeo does not read either`);
      }
      const item = chooseItem(parseTarManifest(await archive.read(MANIFEST_FILE, MAX_TAR_MANIFEST_SIZE)), selector);
      const configBytes = await archive.read(item.config, MAX_CONFIG_SIZE).catch((err: unknown) => {
        if (!(err instanceof BlobNotFoundError)) throw err;
        throw new BlobNotFoundError(`config ${JSON.stringify(item.config)} named in manifest.json is missing from archive ${archive.file}`, { cause: err });
      });
      const diffIds = configDiffIds(configBytes, item.config);
      const layers = await DockerArchiveSource.layerData(archive, item, diffIds);
      const configDigest = sha256Digest(configBytes);
      const manifest = schema2ManifestBytes(
        { size: configBytes.length, digest: configDigest },
        diffIds.map((d) => ({ digest: d, size: layers.get(d)!.size })),
      );
      return new DockerArchiveSource(reference, archive, configBytes, configDigest, layers, manifest);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  /** Pairs diff IDs with layer tars, refusing one tar claimed by two different diff IDs. */
  private static async layerData(archive: TarArchive, item: TarManifestItem, diffIds: readonly string[]): Promise<Map<string, ArchiveLayer>> {
    if (item.layers.length !== diffIds.length) {
      throw new UnsupportedError(`Inconsistent layer count: ${item.layers.length} in manifest, ${diffIds.length} in config`);
    }
    const byDiffId = new Map<string, ArchiveLayer>();
    const diffIdOfEntry = new Map<string, string>();
    for (const [i, diffId] of diffIds.entries()) {
      // The same layer twice in one image is legitimate (docker save links the copies); its diff ID
      // guarantees the bytes are the same, so the first tar serves both.
      if (byDiffId.has(diffId)) continue;
      const layerPath = item.layers[i]!;
      let entry: TarEntry;
      try {
        entry = archive.entry(layerPath);
      } catch (err) {
        if (err instanceof BlobNotFoundError) {
          throw new BlobNotFoundError(`layer tarfile ${JSON.stringify(layerPath)} named in manifest.json is missing from archive ${archive.file}`, { cause: err });
        }
        throw err;
      }
      const previous = diffIdOfEntry.get(entry.name);
      if (previous !== undefined) throw new UnsupportedError(`Layer tarfile ${layerPath} used for two different DiffID values`);
      diffIdOfEntry.set(entry.name, diffId);
      const compression = await archive.sniff(entry);
      requireGzipOrNone(compression, `layer ${layerPath} in archive ${archive.file}`);
      const gzipped = compression === 'gzip';
      const size = gzipped ? await countBytes(gunzipped(archive.rangeStream(entry))) : entry.size;
      byDiffId.set(diffId, { entry, gzipped, size });
    }
    return byDiffId;
  }

  async getManifest(instanceDigest: string | undefined, _signal: AbortSignal): Promise<RawManifest> {
    if (instanceDigest !== undefined) throw new UnsupportedError('Manifest lists are not supported by "docker-archive:"');
    return { bytes: this.manifestBytes, mediaType: MediaTypes.dockerManifest };
  }

  async getBlob(request: BlobRequest): Promise<BlobReader> {
    if (request.digest === this.configDigest) return bufferRange(this.configBytes, request.range, `blob ${request.digest}`);
    const layer = this.layers.get(request.digest);
    if (layer === undefined) throw new BlobNotFoundError(`Unknown blob ${request.digest}`);
    const part = request.range === undefined ? { start: 0, length: layer.size } : rangeWithin(request.range, layer.size, `blob ${request.digest}`);
    if (!layer.gzipped) return { stream: this.archive.rangeStream(layer.entry, part), size: part.length };
    const whole = gunzipped(this.archive.rangeStream(layer.entry));
    // A gzip stream cannot be entered mid-way: a range of a compressed layer tar is decompressed from its start, the bytes before it dropped.
    return { stream: request.range === undefined ? whole : skipAndTake(whole, part.start, part.length), size: part.length };
  }

  close(): Promise<void> {
    return this.archive.close();
  }
}

/** Decompresses a stream; a failure on either side surfaces on the returned stream. */
function gunzipped(compressed: Readable): Readable {
  // zlib loads with a compressed layer only, not with the open path's chunk.
  return pipeline(compressed, (require('node:zlib') as typeof import('node:zlib')).createGunzip(), () => {
    // Errors reach the consumer through the returned stream; nothing more to do here.
  });
}
