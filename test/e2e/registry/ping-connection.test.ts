/**
 * A first image from a registry: the ping (GET /v2/) and the manifest that follows go over one
 * connection. undici's pool frees the ping's connection a turn of the event loop after its body
 * was read; asked at once, it opened a second connection (for TLS, a second handshake) while the
 * first sat idle (server/transports/docker/client.ts, doPing).
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../../clients/typescript';
import { match, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy';
import { makeLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { emptyAuthFilePath, pushImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();

describe('the connection of a first image', { skip, timeout: 60_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    await pushImage(registry, 'ping/img:v1', { layers: [makeLayer({ 'etc/hostname': 'ping\n' })] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });

  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  it('carries the ping and the manifest', async () => {
    const client = await ImageProxy.spawn({ args: ['--insecure-policy', '--tls-verify=false'], env: { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath() } });
    try {
      await client.initialize();
      const image = await client.openImage(`docker://${proxy.host}/ping/img:v1`);
      assert.ok((await client.getManifest(image)).bytes.length > 0);
    } finally {
      assert.equal(await client.shutdown(), 0, client.stderr);
    }
    const [ping] = proxy.seen(match.path(/^\/v2\/$/));
    const [manifest] = proxy.seen(match.manifest());
    assert.ok(ping !== undefined && manifest !== undefined, `requests seen: ${proxy.requests.map((r) => `${r.method} ${r.path}`).join(', ')}`);
    assert.equal(manifest.connection, ping.connection);
  });
});
