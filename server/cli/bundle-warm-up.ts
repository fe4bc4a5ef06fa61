/**
 * What the bundle does before build-bundle.ts takes V8's code cache of it: the functions run here
 * are in the cache already compiled, the others are compiled at their first call in every
 * process. A proxy's first work is Initialize and, most often, an image from a registry: so the
 * warm-up serves Initialize, then opens a small image on a loopback HTTP registry made here
 * (the https attempt that fails first, then plain HTTP, as against an insecure registry) and
 * reads its manifest and config. Nothing leaves the machine; the build stays offline.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ImageProxy } from '../../clients/typescript/image-proxy';
import { SeqpacketChannel, seqpacketPair } from '../../clients/typescript/seqpacket-channel';
import type { Cli } from './start';

const REPOSITORY = 'layerpipe/warm-up';
const TAG = 'v1';

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** A one-image registry (Docker Registry HTTP API v2, read-only, no auth) on a loopback port. */
function startWarmUpRegistry(): Promise<{ server: Server; host: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [],
  }));
  const blobs = new Map([[`/v2/${REPOSITORY}/manifests/${TAG}`, { bytes: manifest, type: 'application/vnd.oci.image.manifest.v1+json' }],
    [`/v2/${REPOSITORY}/blobs/${sha256(config)}`, { bytes: config, type: 'application/octet-stream' }]]);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const found = req.url === '/v2/' ? { bytes: Buffer.from('{}'), type: 'application/json' } : blobs.get(req.url ?? '');
    if (found === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': found.type, 'content-length': found.bytes.length, 'docker-content-digest': sha256(found.bytes) });
    res.end(req.method === 'HEAD' ? undefined : found.bytes);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, host: `127.0.0.1:${(server.address() as AddressInfo).port}` }));
  });
}

/**
 * A policy as distributions ship it (accept by default, signed images for one registry), read at
 * the start as a proxy started without --insecure-policy reads /etc/containers/policy.json: the
 * parser's functions are then in the cache too. The warm-up image's registry is not the signed one.
 */
const WARM_UP_POLICY = {
  default: [{ type: 'insecureAcceptAnything' }],
  transports: {
    docker: { 'registry.example.com/signed': [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: '/etc/pki/warm-up.gpg' }] },
    'docker-daemon': { '': [{ type: 'insecureAcceptAnything' }] },
  },
};

/** Runs the bundle's proxy command through Initialize and a first image; resolves once it exited with 0. */
export async function warmUp(cli: Cli): Promise<void> {
  const { server, host } = await startWarmUpRegistry();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-warm-up-'));
  try {
    const policy = path.join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify(WARM_UP_POLICY, null, 4));
    const [ours, theirs] = seqpacketPair();
    // No flag may change V8's settings here: the cache records them, and V8 refuses it under others.
    const serving = cli.run(['experimental-image-proxy', '--sockfd', String(theirs), '--policy', policy, '--tls-verify=false', '--memory-guard=false']);
    const proxy = ImageProxy.connect(new SeqpacketChannel(ours));
    await proxy.initialize();
    const image = await proxy.openImage(`docker://${host}/${REPOSITORY}:${TAG}`);
    const { bytes } = await proxy.getManifest(image);
    if (bytes.length === 0) throw new Error('the warm-up image has an empty manifest');
    await proxy.getConfig(image);
    await proxy.closeImage(image);
    await proxy.close();
    const status = await serving;
    if (status !== 0) throw new Error(`the warm-up proxy ended with status ${status}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
