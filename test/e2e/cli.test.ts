/**
 * The layerpipe command as a process: Shutdown and end of socket exit 0, --sockfd, flags that
 * are unknown or refused exit 2, a policy file that cannot be used stops the proxy at start-up
 * (exit 1, as skopeo), and `layerpipe inspect` (which honours the policy too).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
      [['--sockfd', 'x'], /expected a non-negative integer/],
    ] as [string[], RegExp][]) {
      const r = spawnSync(BIN, ['experimental-image-proxy', ...flags], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(r.status, 2, flags.join(' '));
      assert.match(r.stderr, pattern);
    }
  });
});

describe('policy at start-up', () => {
  it('a policy file that is missing or invalid stops the proxy before it serves, exit 1', () => {
    const bad = path.join(tmp, 'bad-policy.json');
    writeFileSync(bad, '{"default": []}');
    const dup = path.join(tmp, 'dup-policy.json');
    writeFileSync(dup, '{"default": [{"type": "reject"}], "default": [{"type": "insecureAcceptAnything"}]}');
    for (const [file, pattern] of [
      [bad, /Error loading trust policy: invalid policy in ".*bad-policy.json": List of verification policy requirements must not be empty/],
      [dup, /invalid policy in ".*dup-policy.json": Duplicate key "default"/],
      [path.join(tmp, 'none.json'), /Error loading trust policy: open .*none.json: no such file or directory/],
    ] as [string, RegExp][]) {
      // stdin is a plain pipe: had the proxy started serving, it would fail differently.
      const r = spawnSync(BIN, ['experimental-image-proxy', '--policy', file], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
  });

  it('--insecure-policy reads no file', async () => {
    const p = await ImageProxy.spawn({ args: ['--insecure-policy', '--policy', path.join(tmp, 'none.json')] });
    try {
      await p.initialize();
      await p.openImage(`oci:${ociDir}:latest`);
    } finally {
      assert.equal(await p.shutdown(), 0);
    }
  });
});

describe('inspect --signatures', () => {
  it('honours the policy: a reject policy refuses, exit 1, and the report says why without resolving the image', () => {
    const reject = path.join(tmp, 'reject.json');
    writeFileSync(reject, '{"default": [{"type": "reject"}]}');
    const r = spawnSync(BIN, ['inspect', '--signatures', '--policy', reject, `oci:${ociDir}:latest`], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Running image oci:.*:latest is rejected by policy\./);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(report), ['Digest', 'Signatures', 'Policy']);
    assert.equal(report.Digest, oci.digest);
    assert.deepEqual(report.Signatures, []);
    assert.deepEqual(report.Policy, { verdict: 'rejected', scope: 'default', reason: `Running image oci:${ociDir}:latest is rejected by policy.` });
  });

  it('prints skopeo inspect\'s fields, then the signatures and the verdict', async () => {
    const accept = path.join(tmp, 'accept.json');
    writeFileSync(accept, '{"default": [{"type": "insecureAcceptAnything"}], "transports": {"oci": {"": [{"type": "insecureAcceptAnything"}]}}}');
    const r = spawnSync(BIN, ['inspect', '--signatures', '--policy', accept, `oci:${ociDir}:latest`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { Digest: string; Architecture: string; Layers: string[]; Signatures: unknown[]; Policy: unknown };
    assert.equal(report.Digest, oci.digest);
    assert.equal(report.Architecture, 'amd64');
    assert.deepEqual(report.Layers, [layer.digest]);
    assert.deepEqual(report.Signatures, []);
    assert.deepEqual(report.Policy, { verdict: 'accepted', scope: 'oci:' });
    const missing = spawnSync(BIN, ['inspect', `oci:${ociDir}:nope`], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no descriptor found/);
  });
});


