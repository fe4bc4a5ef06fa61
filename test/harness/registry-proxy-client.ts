/**
 * Drives an image proxy (layerpipe, or skopeo 1.9.3 as the oracle) through the TypeScript
 * client against a test registry: the flags that reach it, reading a blob while FinishPipe
 * runs, and a snapshot of an image (manifest, configs, every layer's bytes) to compare.
 */
import { createHash } from 'node:crypto';
import { ImageProxy, METHODS, ProxyError, pipeReadable, readAll, type ImageProxyOptions } from '../../clients/typescript';
import type { RunningRegistry } from './registry';
import { emptyAuthFilePath } from './registry-images';

export type ProxyProgram = 'layerpipe' | 'skopeo';

/** --tls-verify=false for plain HTTP, --cert-dir with the test CA for TLS. */
export function tlsFlags(registry: Pick<RunningRegistry, 'certDir'>): string[] {
  return registry.certDir !== undefined ? ['--cert-dir', registry.certDir] : ['--tls-verify=false'];
}

export interface SpawnOptions {
  readonly program?: ProxyProgram;
  readonly args?: readonly string[];
  /** Extra environment (PATH for credential helpers, layerpipe's retry knobs…). */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * Spawns and initializes a proxy. The environment points the default auth file at an empty one
 * so that the developer's own logins never take part.
 */
export async function spawnProxy(opts: SpawnOptions = {}): Promise<ImageProxy> {
  const options: ImageProxyOptions = {
    ...(opts.program === 'skopeo' ? { command: 'skopeo' } : {}),
    args: opts.args ?? [],
    env: { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath(), ...opts.env },
  };
  const proxy = await ImageProxy.spawn(options);
  try {
    await proxy.initialize();
  } catch (err) {
    await proxy.close();
    throw err;
  }
  return proxy;
}

/** Runs `fn` with a fresh proxy and closes it; the proxy's stderr is added to a failure. */
export async function withProxy<T>(opts: SpawnOptions, fn: (proxy: ImageProxy) => Promise<T>): Promise<T> {
  const proxy = await spawnProxy(opts);
  try {
    return await fn(proxy);
  } catch (err) {
    if (err instanceof Error && !(err instanceof ProxyError) && proxy.stderr.trim() !== '') err.message += `\n--- ${opts.program ?? 'layerpipe'} stderr ---\n${proxy.stderr}`;
    throw err;
  } finally {
    await proxy.close();
  }
}

/**
 * GetBlob, reading the pipe while FinishPipe runs (skopeo's FinishPipe blocks until the copy
 * ends). Rejects with FinishPipe's error (a ProxyError) when the copy failed.
 */
export async function fetchBlob(proxy: ImageProxy, imageId: number, digest: string, size: number): Promise<Buffer> {
  const transfer = await proxy.getBlob(imageId, digest, size);
  const finished = transfer.finish();
  finished.catch(() => transfer.stream.destroy());
  const [data, finish] = await Promise.allSettled([readAll(transfer.stream), finished]);
  if (finish.status === 'rejected') throw finish.reason;
  if (data.status === 'rejected') throw data.reason;
  return data.value;
}

export const sha256Hex = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface OciManifestShape {
  config: { digest: string; size: number; mediaType: string };
  layers: { digest: string; size: number; mediaType: string }[];
}

export interface ImageSnapshot {
  /** GetManifest's value: the digest of the chosen manifest as stored. */
  readonly manifestDigest: string;
  /** The manifest as OCI, parsed. */
  readonly manifest: unknown;
  readonly fullConfig: unknown;
  readonly config: unknown;
  /** sha256 of GetFullConfig's bytes, to compare with the manifest's config descriptor. */
  readonly fullConfigDigest: string;
  /** Per layer: the digest and length of the bytes GetBlob delivered. */
  readonly layers: readonly { readonly digest: string; readonly length: number }[];
}

/** GetFullConfig's bytes as sent (the client's getFullConfig parses them). */
export async function fullConfigRaw(proxy: ImageProxy, imageId: number): Promise<Buffer> {
  const reply = await proxy.call(METHODS.GetFullConfig, [imageId]);
  const stream = pipeReadable(reply.fds[0]);
  const finished = proxy.finishPipe(reply.pipeid);
  finished.catch(() => stream.destroy());
  const [data, finish] = await Promise.allSettled([readAll(stream), finished]);
  if (finish.status === 'rejected') throw finish.reason;
  if (data.status === 'rejected') throw data.reason;
  return data.value;
}

/** Everything a client reads of an image, fetched through the proxy. */
export async function snapshotImage(proxy: ImageProxy, imageRef: string): Promise<ImageSnapshot> {
  const id = await proxy.openImage(imageRef);
  try {
    const { digest, bytes } = await proxy.getManifest(id);
    const manifest = JSON.parse(bytes.toString('utf8')) as OciManifestShape;
    const fullConfigBytes = await fullConfigRaw(proxy, id);
    const fullConfig = JSON.parse(fullConfigBytes.toString('utf8')) as unknown;
    const config = await proxy.getConfig(id);
    const layers: { digest: string; length: number }[] = [];
    for (const layer of manifest.layers) {
      const data = await fetchBlob(proxy, id, layer.digest, layer.size);
      layers.push({ digest: sha256Hex(data), length: data.length });
    }
    return { manifestDigest: digest, manifest, fullConfig, config, fullConfigDigest: sha256Hex(fullConfigBytes), layers };
  } finally {
    await proxy.closeImage(id);
  }
}

/** The error of a rejected promise, which must be a ProxyError (the proxy answered success: false). */
export async function proxyErrorOf(promise: Promise<unknown>): Promise<ProxyError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ProxyError) return err;
    throw err;
  }
  throw new Error('expected the proxy to fail, but it succeeded');
}
