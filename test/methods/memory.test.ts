/**
 * Memory while a blob far larger than the proxy streams through the skopeo wire: the peak RSS
 * stays flat with the transfer memory guard (server/transfer/memory-guard.ts), and this test
 * pins what the guard buys by streaming the same blob with --memory-guard=false.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../clients/typescript';
import { sha256 } from '../harness/oci-builder';

const SIZE = 512 * 1024 * 1024;
/** What the guard must save at least (measured here: 57.5-58.1 MiB with it, 86.0-86.9 MiB without). */
const GUARD_SAVES_AT_LEAST_MIB = 12;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-memory-'));
const layout = path.join(tmp, 'big');
let digest = '';

/** A layout whose one layer is 512 MiB of zeros, written and hashed in 8 MiB steps. */
function writeBigLayout(): void {
  const chunk = Buffer.alloc(8 * 1024 * 1024);
  const hash = createHash('sha256');
  const staging = path.join(tmp, 'big-layer');
  const fd = openSync(staging, 'w');
  for (let written = 0; written < SIZE; written += chunk.length) {
    writeSync(fd, chunk);
    hash.update(chunk);
  }
  closeSync(fd);
  digest = `sha256:${hash.digest('hex')}`;
  mkdirSync(path.join(layout, 'blobs', 'sha256'), { recursive: true });
  renameSync(staging, path.join(layout, 'blobs', 'sha256', digest.slice(7)));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] } }));
  writeFileSync(path.join(layout, 'blobs', 'sha256', sha256(config).slice(7)), config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: SIZE }],
  }));
  writeFileSync(path.join(layout, 'blobs', 'sha256', sha256(manifest).slice(7)), manifest);
  writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }] }));
}

/** Streams the layer through a fresh proxy; the proxy's peak RSS in MiB. */
async function peakWhileStreaming(args: readonly string[]): Promise<number> {
  const proxy = await ImageProxy.spawn({ args });
  try {
    await proxy.initialize();
    const id = await proxy.openImage(`oci:${layout}`);
    const t = await proxy.getBlob(id, digest, SIZE);
    let seen = 0;
    t.stream.on('data', (c: Buffer) => { seen += c.length; });
    await Promise.all([new Promise((resolve) => t.stream.on('end', resolve)), t.finish()]);
    assert.equal(seen, SIZE);
    const status = readFileSync(`/proc/${proxy.pid}/status`, 'utf8');
    return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
  } finally {
    await proxy.close();
  }
}

before(writeBigLayout);
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('memory', () => {
  it('stays flat while 512 MiB streams, and the memory guard is what keeps it flat', async () => {
    const guarded = await peakWhileStreaming([]);
    const unguarded = await peakWhileStreaming(['--memory-guard=false']);
    process.stdout.write(`# proxy peak RSS streaming 512 MiB: ${guarded.toFixed(1)} MiB with the guard, ${unguarded.toFixed(1)} MiB without\n`);
    assert.ok(guarded < 160, `proxy peak RSS ${guarded.toFixed(1)} MiB while streaming 512 MiB`);
    assert.ok(unguarded - guarded >= GUARD_SAVES_AT_LEAST_MIB, `the guard saved only ${(unguarded - guarded).toFixed(1)} MiB (${unguarded.toFixed(1)} -> ${guarded.toFixed(1)})`);
  });
});
