/**
 * A large oci-archive (1 GiB by default) written straight to disk as a tar, without staging
 * the layout in a directory, and the timed "open + stream every layer" run through a proxy
 * that the large test and bench/archive-bench.ts share. Layer bytes are a random block
 * stamped with a counter, so no two chunks are alike; their digests come from a first,
 * hashing-only pass, since the tar names blobs by digest.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statfsSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { ImageProxy } from '../../clients/typescript';
import { MT, sha256, ustarHeader } from './oci-builder';

const CHUNK = 1024 * 1024;

export interface LargeArchive {
  readonly file: string;
  readonly bytes: number;
  readonly layers: readonly { digest: string; size: number }[];
}

/** Chunk `j` of layer `i`: the shared random block with its first 16 bytes set to (i, j). */
function stamp(block: Buffer, layer: number, chunk: number): Buffer {
  block.writeUInt32LE(layer, 0);
  block.writeUInt32LE(chunk, 4);
  block.writeDoubleLE(layer * 1e6 + chunk, 8);
  return block;
}

/** Writes an oci-archive of `layerCount` layers of `layerMiB` MiB each; returns its layout. */
export function writeLargeOciArchive(file: string, layerCount = 4, layerMiB = 256): LargeArchive {
  const block = randomBytes(CHUNK);
  const layers: { digest: string; size: number }[] = [];
  for (let i = 0; i < layerCount; i++) {
    const hash = createHash('sha256');
    for (let j = 0; j < layerMiB; j++) hash.update(stamp(block, i, j));
    layers.push({ digest: `sha256:${hash.digest('hex')}`, size: layerMiB * CHUNK });
  }
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/true'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
  }));
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MT.ociIndex,
    manifests: [{ mediaType: MT.ociManifest, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'big' } }],
  }));
  const fd = openSync(file, 'w');
  let bytes = 0;
  const put = (b: Buffer) => {
    writeSync(fd, b);
    bytes += b.length;
  };
  const padding = (size: number) => put(Buffer.alloc((512 - (size % 512)) % 512));
  const small = (name: string, data: Buffer) => {
    put(ustarHeader(name, data.length));
    put(data);
    padding(data.length);
  };
  try {
    small('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    small('index.json', index);
    small(`blobs/sha256/${sha256(manifest).slice(7)}`, manifest);
    small(`blobs/sha256/${sha256(config).slice(7)}`, config);
    layers.forEach((l, i) => {
      put(ustarHeader(`blobs/sha256/${l.digest.slice(7)}`, l.size));
      for (let j = 0; j < layerMiB; j++) put(stamp(block, i, j));
    });
    put(Buffer.alloc(1024));
  } finally {
    closeSync(fd);
  }
  return { file, bytes, layers };
}

export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Peak and current resident memory of a process, in bytes (Linux /proc). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

async function drain(stream: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) n += chunk.length;
  return n;
}

/** Bytes a process has read through read(2) and friends so far (rchar of /proc/PID/io). */
function bytesReadBy(pid: number): number {
  const m = /^rchar:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m === null ? NaN : Number(m[1]);
}

export interface StreamRun {
  readonly openMs: number;
  /** Bytes the proxy read during OpenImage (any file or socket). */
  readonly openReadBytes: number;
  readonly totalMs: number;
  readonly bytes: number;
  /** The proxy's peak RSS (VmHWM) at the end, and its RSS just after OpenImage. */
  readonly peakRss: number;
  readonly rssAfterOpen: number;
}

/**
 * Spawns a proxy (`command` undefined = layerpipe), then times OpenImage and GetManifest +
 * GetBlob of every layer, each read to its end and finished with FinishPipe.
 */
export async function openAndStreamAll(imageRef: string, command?: string, args: readonly string[] = []): Promise<StreamRun> {
  const proxy = await ImageProxy.spawn({ ...(command !== undefined ? { command } : {}), args });
  try {
    await proxy.initialize();
    const pid = proxy.pid!;
    const t0 = performance.now();
    const readBefore = bytesReadBy(pid);
    const id = await proxy.openImage(imageRef);
    const openMs = performance.now() - t0;
    const openReadBytes = bytesReadBy(pid) - readBefore;
    const rssAfterOpen = memoryOf(pid).rss;
    const { bytes } = await proxy.getManifest(id);
    const manifest = JSON.parse(bytes.toString('utf8')) as { layers: { digest: string; size: number }[] };
    let total = 0;
    for (const layer of manifest.layers) {
      const transfer = await proxy.getBlob(id, layer.digest, layer.size);
      const [n] = await Promise.all([drain(transfer.stream), transfer.finish()]);
      if (n !== layer.size) throw new Error(`${layer.digest}: got ${n} bytes, expected ${layer.size}`);
      total += n;
    }
    const totalMs = performance.now() - t0;
    const { peak } = memoryOf(pid);
    await proxy.closeImage(id);
    return { openMs, openReadBytes, totalMs, bytes: total, peakRss: peak, rssAfterOpen };
  } finally {
    await proxy.close();
  }
}
