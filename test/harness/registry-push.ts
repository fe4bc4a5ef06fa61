/**
 * Raw pushes to a test registry over the distribution API (monolithic blob upload, manifest
 * PUT), for content skopeo would not write as it is: sigstore attachment manifests with
 * hand-made annotations, wrong media types, lying sizes, hundreds of layers.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { RunningRegistry } from './registry';

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function send(registry: RunningRegistry, method: string, url: URL, body: Buffer | undefined, headers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const auth: Record<string, string> = registry.creds === undefined ? {} : { authorization: `Basic ${Buffer.from(registry.creds).toString('base64')}` };
    const options = { method, headers: { ...auth, ...headers, ...(body === undefined ? {} : { 'content-length': String(body.length) }) }, agent: false as const };
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = url.protocol === 'https:' ? https.request(url, { ...options, rejectUnauthorized: false }, onResponse) : http.request(url, options, onResponse);
    req.on('error', reject);
    req.end(body);
  });
}

export const sha256Of = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Uploads `data` as a blob of `repo`; its digest. */
export async function pushBlob(registry: RunningRegistry, repo: string, data: Buffer): Promise<string> {
  const digest = sha256Of(data);
  const start = await send(registry, 'POST', new URL(`/v2/${repo}/blobs/uploads/`, registry.url), Buffer.alloc(0), {});
  if (start.status !== 202 || typeof start.headers.location !== 'string') throw new Error(`starting an upload to ${repo}: status ${start.status} ${start.body}`);
  const url = new URL(start.headers.location, registry.url);
  url.searchParams.set('digest', digest);
  const done = await send(registry, 'PUT', url, data, { 'content-type': 'application/octet-stream' });
  if (done.status !== 201) throw new Error(`uploading a blob to ${repo}: status ${done.status} ${done.body}`);
  return digest;
}

/** Puts manifest bytes under `reference` (a tag) with `mediaType`; the manifest's digest. */
export async function putManifest(registry: RunningRegistry, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  const res = await send(registry, 'PUT', new URL(`/v2/${repo}/manifests/${reference}`, registry.url), bytes, { 'content-type': mediaType });
  if (res.status !== 201) throw new Error(`putting manifest ${repo}:${reference}: status ${res.status} ${res.body}`);
  return sha256Of(bytes);
}

export interface AttachmentLayer {
  readonly payload: Buffer;
  readonly annotations: Readonly<Record<string, string>>;
  readonly mediaType?: string;
  /** The size the descriptor claims (default: the payload's). */
  readonly claimedSize?: number;
}

/**
 * Pushes a cosign-style attachment manifest for `manifestDigest` in `repo` under the tag
 * "sha256-HEX.sig": an OCI manifest whose layers are the payloads with their annotations.
 */
export async function pushSigstoreAttachment(
  registry: RunningRegistry, repo: string, manifestDigest: string, layers: readonly AttachmentLayer[], manifestMediaType = 'application/vnd.oci.image.manifest.v1+json',
): Promise<void> {
  const config = Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256Of(l.payload)) } }));
  const configDigest = await pushBlob(registry, repo, config);
  const uploaded = new Map<string, string>();
  const descriptors = [];
  for (const layer of layers) {
    const key = sha256Of(layer.payload);
    if (!uploaded.has(key)) uploaded.set(key, await pushBlob(registry, repo, layer.payload));
    descriptors.push({
      mediaType: layer.mediaType ?? 'application/vnd.dev.cosign.simplesigning.v1+json', size: layer.claimedSize ?? layer.payload.length, digest: uploaded.get(key)!, annotations: layer.annotations,
    });
  }
  const configType = manifestMediaType.includes('docker') ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json';
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: manifestMediaType, config: { mediaType: configType, size: config.length, digest: configDigest }, layers: descriptors }));
  await putManifest(registry, repo, `${manifestDigest.replace(':', '-')}.sig`, manifest, manifestMediaType);
}
