/**
 * What a service's connections share, against a real token-auth docker-registry (behind a
 * recording proxy): one bearer token for every client opening the same image, and manifests
 * read by digest answered from the service's cache, so a second client asking for an image
 * the service has seen costs no token round trip and no second fetch of an instance manifest,
 * and opening it by digest costs no request at all.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImageProxy } from '../../clients/typescript';
import { match, startFaultProxy, type FaultProxy } from '../harness/fault-proxy';
import { randomLayer } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { pushMultiArch, type PushedMultiArch } from '../harness/registry-images';
import { fetchBlob, sha256Hex } from '../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../harness/registry-tools';
import { startService, stopService, type RunningService } from '../harness/service';

const skip = registrySuiteSkip();
const REPO_TAG = 'shared/multi:v1';

describe('serve --listen: shared tokens and manifests', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let recorder: FaultProxy;
  let pushed: PushedMultiArch;
  let service: RunningService;
  let root: string;
  const amd64Layer = randomLayer(300_000, 'amd64.bin');
  const arm64Layer = randomLayer(300_000, 'arm64.bin');

  before(async () => {
    assertRegistryTools();
    root = mkdtempSync(path.join(os.tmpdir(), 'service-registry-'));
    registry = await startRegistry({ auth: 'token' });
    pushed = await pushMultiArch(registry, REPO_TAG, [
      { platform: { os: 'linux', architecture: 'amd64' }, spec: { layers: [amd64Layer] } },
      { platform: { os: 'linux', architecture: 'arm64' }, spec: { layers: [arm64Layer] } },
    ]);
    recorder = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    service = await startService({
      socketPath: path.join(root, 'service.sock'),
      args: ['--tls-verify=false', '--creds', registry.creds!, '--override-os', 'linux', '--override-arch', 'amd64'],
    });
  });
  after(async () => {
    if (service?.running) assert.equal((await stopService(service)).code, 0, service.stderr);
    await recorder?.close();
    await registry?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  const instanceDigest = (): string => pushed.instances.find((i) => i.platform.architecture === 'amd64')!.digest;
  const instanceManifestRequests = (): number =>
    recorder.requests.filter((r) => match.manifest()(r) && r.path.endsWith(`/manifests/${instanceDigest()}`)).length;

  async function pullWith(proxy: ImageProxy, reference: string): Promise<void> {
    const image = await proxy.openImage(reference);
    const manifest = await proxy.getManifest(image);
    assert.equal(manifest.digest, instanceDigest());
    const layers = await proxy.getLayerInfo(image);
    assert.equal(layers.length, 1);
    const bytes = await fetchBlob(proxy, image, layers[0]!.digest, layers[0]!.size);
    assert.equal(sha256Hex(bytes), amd64Layer.digest);
    await proxy.closeImage(image);
  }

  it('two clients opening the same image share one bearer token and one fetch of the instance manifest', async () => {
    const reference = `docker://${recorder.host}/${REPO_TAG}`;
    const tokensBefore = registry.tokenServer!.requests.length;
    const first = await service.connect();
    await pullWith(first, reference);
    assert.equal(registry.tokenServer!.requests.length - tokensBefore, 1, 'the first client needed a token');
    assert.equal(instanceManifestRequests(), 1);

    const second = await service.connect();
    await pullWith(second, reference);
    assert.equal(registry.tokenServer!.requests.length - tokensBefore, 1, 'the second client reused the token');
    assert.equal(instanceManifestRequests(), 1, 'the instance manifest came from the service\'s cache');
    await Promise.all([first.close(), second.close()]);
  });

  it('a client opening by a digest the service has seen costs no registry request at all', async () => {
    const requestsBefore = recorder.requests.length;
    const tokensBefore = registry.tokenServer!.requests.length;
    const proxy = await service.connect();
    const image = await proxy.openImage(`docker://${recorder.host}/shared/multi@${instanceDigest()}`);
    assert.equal((await proxy.getManifest(image)).digest, instanceDigest());
    assert.equal(recorder.requests.length, requestsBefore, recorder.requests.slice(requestsBefore).map((r) => `${r.method} ${r.path}`).join('\n'));
    assert.equal(registry.tokenServer!.requests.length, tokensBefore);
    await proxy.close();
  });
});
