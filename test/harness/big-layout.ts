/**
 * A one-layer OCI layout far larger than the proxy, for memory tests: the layer is `size` bytes
 * of zeros, written and hashed in 8 MiB steps so the test itself never holds it.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { sha256 } from './oci-builder';

/** Writes the layout at `layout` (staging the layer in `scratchDir`); the layer's digest. */
export function writeBigLayout(layout: string, scratchDir: string, size: number): string {
  const chunk = Buffer.alloc(8 * 1024 * 1024);
  const hash = createHash('sha256');
  const staging = path.join(scratchDir, 'big-layer');
  const fd = openSync(staging, 'w');
  for (let written = 0; written < size; written += chunk.length) {
    writeSync(fd, chunk);
    hash.update(chunk);
  }
  closeSync(fd);
  const digest = `sha256:${hash.digest('hex')}`;
  mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
  renameSync(staging, path.join(layout, 'blobs', 'sha256', digest.slice(7)));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] } }));
  writeFileSync(path.join(layout, 'blobs', 'sha256', sha256(config).slice(7)), config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size }],
  }));
  writeFileSync(path.join(layout, 'blobs', 'sha256', sha256(manifest).slice(7)), manifest);
  writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }] }));
  return digest;
}
