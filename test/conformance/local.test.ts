/**
 * Conformance with skopeo 1.9.3 on local images: the same requests to both proxies give the
 * same values and the same parsed payloads (and the same bytes where skopeo's are canonical).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { snapshotImage, withProxy, type ImageSnapshot, type SpawnOptions } from '../harness/registry-proxy-client';
import {
  makeLayer, randomLayer, writeDirImage, writeImageBlobs, writeIndexBlob, writeLayoutIndex, writeOciImage,
} from '../harness/oci-builder';

const skopeoMissing = spawnSync('skopeo', ['--version']).status !== 0;
const skip = skopeoMissing ? (process.env.CI === 'true' ? false : 'skopeo not installed (apt-get install -y skopeo)') : false;
if (skopeoMissing && process.env.CI === 'true') throw new Error('skopeo is required under CI=true: apt-get install -y skopeo');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-conformance-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const refs: Record<string, string> = {};
before(() => {
  const layers = [makeLayer({ 'etc/motd': 'hi <there> & you\n' }), randomLayer(1024 * 1024), randomLayer(70_000, 'small.bin')];
  const runtimeConfig = {
    User: '1000:1000', ExposedPorts: { '8080/tcp': {}, '443/tcp': {} }, Env: ['A=1', 'B=<2>'], Entrypoint: ['/init'], Cmd: ['--serve'],
    Volumes: { '/data': {} }, WorkingDir: '/srv', Labels: { 'z.last': 'x&y', 'a.first': 'ü' }, StopSignal: 'SIGTERM',
    Hostname: 'docker-only', AttachStdin: false,
  };
  writeOciImage(path.join(tmp, 'oci'), { layers, runtimeConfig }, 'v1');
  refs.oci = `oci:${path.join(tmp, 'oci')}:v1`;
  writeDirImage(path.join(tmp, 'dir'), {
    layers: layers.slice(0, 2), runtimeConfig,
    extraConfig: { docker_version: '24.0.7', container_config: { Hostname: 'x' }, created: '2023-02-03T04:05:06.700+01:00', author: 'me' },
  });
  refs.dir = `dir:${path.join(tmp, 'dir')}`;
  const multi = path.join(tmp, 'multi');
  const amd = writeImageBlobs(multi, { layers: [layers[0]!], architecture: 'amd64' });
  const arm = writeImageBlobs(multi, { layers: [layers[2]!], architecture: 'arm64', variant: 'v8' });
  const armv7 = writeImageBlobs(multi, { layers: [layers[1]!], architecture: 'arm', variant: 'v7' });
  const index = writeIndexBlob(multi, [
    { manifest: amd, platform: { os: 'linux', architecture: 'amd64' } },
    { manifest: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { manifest: armv7, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
  ]);
  writeLayoutIndex(multi, [{ manifest: index, refName: 'multi' }]);
  refs.multi = `oci:${multi}:multi`;
});

async function both(imageRef: () => string, opts: SpawnOptions = {}): Promise<[ImageSnapshot, ImageSnapshot]> {
  const skopeo = await withProxy({ ...opts, program: 'skopeo' }, (p) => snapshotImage(p, imageRef()));
  const layerpipe = await withProxy({ ...opts, program: 'layerpipe' }, (p) => snapshotImage(p, imageRef()));
  return [skopeo, layerpipe];
}

describe('conformance with skopeo on local images', { skip }, () => {
  it('an OCI image in oci: answers the same, byte for byte in the config', async () => {
    const [s, l] = await both(() => refs.oci!);
    assert.deepEqual(l, s);
  });

  it('a Docker schema 2 image in dir: converts to the same OCI manifest and config', async () => {
    const [s, l] = await both(() => refs.dir!);
    assert.deepEqual(l, s);
    assert.equal((l.manifest as { config: { digest: string } }).config.digest, l.fullConfigDigest);
  });

  it('a multi-arch index resolves to the same instance, with and without overrides', async () => {
    for (const args of [[], ['--override-arch', 'arm64'], ['--override-arch', 'arm', '--override-variant', 'v7'], ['--override-arch', 'arm64', '--override-variant', 'v8']]) {
      const [s, l] = await both(() => refs.multi!, { args });
      assert.deepEqual(l, s, args.join(' '));
    }
  });
});
