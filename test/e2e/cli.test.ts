/**
 * The layerpipe command as a process: Shutdown and end of socket exit 0, --sockfd, flags that
 * are unknown or refused exit 2, and `layerpipe inspect`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../clients/typescript';
import { PROTOCOL_VERSION } from '../../protocol/methods';
import { makeLayer, writeOciImage, type WrittenManifest } from '../harness/oci-builder';

const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'layerpipe');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-cli-'));
const ociDir = path.join(tmp, 'oci');
const layer = makeLayer({ 'hello.txt': 'hello\n' });
let oci: WrittenManifest;

before(() => {
  oci = writeOciImage(ociDir, { layers: [layer] }, 'latest');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('process lifetime', () => {
  it('Shutdown: no reply, exit status 0', async () => {
    const p = await ImageProxy.spawn();
    await p.initialize();
    assert.equal(await p.shutdown(), 0);
  });

  it('the client closing the socket: the proxy exits 0', async () => {
    const p = await ImageProxy.spawn();
    await p.initialize();
    await p.openImage(`oci:${ociDir}:latest`);
    assert.equal(await p.close(), 0);
  });

  it('--sockfd serves on another fd', async () => {
    const p = await ImageProxy.spawn({ sockfd: 5 });
    try {
      assert.equal(await p.initialize(), PROTOCOL_VERSION);
    } finally {
      assert.equal(await p.shutdown(), 0);
    }
  });

  it('unknown and refused flags exit 2 with a clear message', async () => {
    for (const [flags, pattern] of [
      [['--no-such-flag'], /unknown flag: --no-such-flag/],
      [['--decryption-key', 'k'], /encrypted images are out of scope/],
      [['--policy', '/etc/containers/policy.json'], /not checked against a signature policy/],
      [['--sockfd', 'x'], /expected a non-negative integer/],
    ] as [string[], RegExp][]) {
      const r = spawnSync(BIN, ['experimental-image-proxy', ...flags], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(r.status, 2, flags.join(' '));
      assert.match(r.stderr, pattern);
    }
  });
});

describe('inspect', () => {
  it('prints digest, platform, config and layers', async () => {
    const r = spawnSync(BIN, ['inspect', `oci:${ociDir}:latest`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { Digest: string; Architecture: string; Layers: { digest: string }[] };
    assert.equal(report.Digest, oci.digest);
    assert.equal(report.Architecture, 'amd64');
    assert.deepEqual(report.Layers.map((l) => l.digest), [layer.digest]);
    const missing = spawnSync(BIN, ['inspect', `oci:${ociDir}:nope`], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no descriptor found/);
  });
});


