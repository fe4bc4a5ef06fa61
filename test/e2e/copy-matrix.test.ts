/**
 * `layerpipe copy` from every source transport (oci:, dir:, oci-archive:, docker-archive:, a
 * registry's OCI and Docker schema 2 images, multi-arch lists with and without --all) to every
 * destination (oci:, dir:, oci-archive:), each checked against `skopeo copy` of the same source
 * in the same run: the manifest skopeo reads back from both has the same digest, skopeo can copy
 * the image out of layerpipe's destination, and the proxy serves it (every layer verified).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLayer, randomLayer, writeOciImage, type ImageSpec } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { pushImage, pushMultiArch } from '../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../harness/registry-tools';
import { layerpipeCopy, proxyReadBack, runSkopeo, skopeoCopiesOut, skopeoRawDigest } from './copy-tools';

interface OciManifest {
  config: { digest: string };
  layers: { digest: string; mediaType: string }[];
}

const skip = registrySuiteSkip();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-copy-matrix-'));
const SPEC: ImageSpec = { layers: [makeLayer({ 'etc/motd': 'hello\n' }), randomLayer(64 * 1024), makeLayer({ 'b.txt': 'top layer\n' })] };
const AMD64: ImageSpec = { layers: [makeLayer({ 'arch.txt': 'amd64\n' }), randomLayer(16 * 1024)] };
const ARM64: ImageSpec = { layers: [makeLayer({ 'arch.txt': 'arm64\n' })] };
const PLATFORMS = [
  { platform: { os: 'linux', architecture: 'amd64' }, spec: AMD64 },
  { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, spec: ARM64 },
];

let registry: RunningRegistry | undefined;
const sources = new Map<string, { name: string; all: boolean; srcFlags: string[] }>();

/** Where each destination kind goes for one case and one tool. */
function destinationFor(kind: 'oci' | 'dir' | 'oci-archive', label: string, tool: string): string {
  const base = path.join(tmp, 'out', `${label}-${kind}-${tool}`);
  if (kind === 'oci') return `oci:${base}:copied`;
  if (kind === 'dir') return `dir:${base}`;
  return `oci-archive:${base}.tar:copied`;
}

before(async () => {
  if (skip !== false) return;
  assertRegistryTools();
  const layout = path.join(tmp, 'layout');
  writeOciImage(layout, SPEC, 'v1');
  const oci = `oci:${layout}:v1`;
  const dir = `dir:${path.join(tmp, 'src-dir')}`;
  const ociArchive = `oci-archive:${path.join(tmp, 'src-oci.tar')}:v1`;
  const dockerArchive = `docker-archive:${path.join(tmp, 'src-docker.tar')}`;
  await runSkopeo(['--insecure-policy', 'copy', '-q', oci, dir]);
  await runSkopeo(['--insecure-policy', 'copy', '-q', oci, ociArchive]);
  await runSkopeo(['--insecure-policy', 'copy', '-q', oci, `${dockerArchive}:example.com/team/app:v1`]);
  registry = await startRegistry();
  await pushImage(registry, 'single/oci:v1', SPEC, { format: 'oci' });
  await pushImage(registry, 'single/docker:v1', SPEC, { format: 'v2s2' });
  await pushMultiArch(registry, 'multi/oci:v1', PLATFORMS, { format: 'oci' });
  await pushMultiArch(registry, 'multi/docker:v1', PLATFORMS, { format: 'v2s2' });
  const reg = ['--src-tls-verify=false', '--src-no-creds'];
  sources.set('oci', { name: oci, all: false, srcFlags: [] });
  sources.set('dir', { name: dir, all: false, srcFlags: [] });
  sources.set('oci-archive', { name: ociArchive, all: false, srcFlags: [] });
  sources.set('docker-archive', { name: dockerArchive, all: false, srcFlags: [] });
  sources.set('registry-oci', { name: registry.ref('single/oci:v1'), all: false, srcFlags: reg });
  sources.set('registry-docker', { name: registry.ref('single/docker:v1'), all: false, srcFlags: reg });
  sources.set('list-oci', { name: registry.ref('multi/oci:v1'), all: false, srcFlags: reg });
  sources.set('list-oci-all', { name: registry.ref('multi/oci:v1'), all: true, srcFlags: reg });
  sources.set('list-docker', { name: registry.ref('multi/docker:v1'), all: false, srcFlags: reg });
  sources.set('list-docker-all', { name: registry.ref('multi/docker:v1'), all: true, srcFlags: reg });
});

after(async () => {
  await registry?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const CASES = ['oci', 'dir', 'oci-archive', 'docker-archive', 'registry-oci', 'registry-docker', 'list-oci', 'list-oci-all', 'list-docker', 'list-docker-all'];
const KINDS = ['oci', 'dir', 'oci-archive'] as const;

describe('layerpipe copy writes what skopeo copy writes', { skip }, () => {
  for (const label of CASES) {
    for (const kind of KINDS) {
      it(`${label} -> ${kind}:`, async () => {
        const source = sources.get(label)!;
        const all = source.all ? ['--all'] : [];
        const ours = destinationFor(kind, label, 'layerpipe');
        const theirs = destinationFor(kind, label, 'skopeo');
        const copied = await layerpipeCopy([...source.srcFlags, ...all, '--quiet', source.name, ours]);
        assert.equal(copied.status, 0, copied.stderr);
        assert.equal(copied.stderr, '', '--quiet prints nothing');
        await runSkopeo(['--insecure-policy', 'copy', '-q', ...source.srcFlags.filter((f) => f !== '--src-no-creds'), ...all, source.name, theirs]);
        if (label === 'docker-archive' && kind !== 'dir') {
          // The documented difference: skopeo gzips docker-archive's uncompressed layers for OCI
          // destinations (new digests); layerpipe copies them as they are, typed as plain tars.
          const [mine, skopeos] = [JSON.parse(await runSkopeo(['inspect', '--raw', ours])), JSON.parse(await runSkopeo(['inspect', '--raw', theirs]))] as OciManifest[];
          assert.equal(mine!.config.digest, skopeos!.config.digest, 'the same config');
          assert.equal(mine!.layers.length, skopeos!.layers.length);
          assert.deepEqual(mine!.layers.map((l) => l.mediaType), mine!.layers.map(() => 'application/vnd.oci.image.layer.v1.tar'));
        } else {
          assert.equal(await skopeoRawDigest(ours), await skopeoRawDigest(theirs), 'skopeo reads the same manifest from both');
        }
        await skopeoCopiesOut(ours, `oci:${path.join(tmp, 'out', `${label}-${kind}-again`)}`, source.all);
        const served = await proxyReadBack(ours);
        if (label === 'docker-archive' && kind !== 'dir') assert.ok(served.layers.length > 0, 'the proxy serves every layer');
        else assert.deepEqual(served, await proxyReadBack(theirs), 'the proxy serves the same image from both');
      });
    }
  }
});
