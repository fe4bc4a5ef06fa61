/**
 * Self-tests of the registry test infrastructure: docker-registry in each mode (plain, TLS,
 * htpasswd, token), pushing and reading back with real skopeo, the token server's tokens, and
 * every fault the fault proxy can script. The docker:// e2e tests rely on all of this.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startFaultProxy, match, type FaultProxy } from '../../harness/fault-proxy';
import { makeLayer, randomLayer, sha256 } from '../../harness/oci-builder';
import { startRegistry, type RegistryAuthMode, type RunningRegistry } from '../../harness/registry';
import { OCI_MANIFEST_ACCEPT, basicAuthHeader, httpGet } from '../../harness/registry-http';
import { pushImage, pushMultiArch, rawManifest, skopeo, skopeoInspect, skopeoRegistryFlags, type PushedSingleImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();

interface InspectOutput {
  Digest: string;
  Layers: string[];
  Architecture: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('test registries', { skip }, () => {
  before(() => assertRegistryTools());

  const modes: { tls: boolean; auth: RegistryAuthMode }[] = [
    { tls: false, auth: 'none' },
    { tls: true, auth: 'none' },
    { tls: false, auth: 'htpasswd' },
    { tls: true, auth: 'htpasswd' },
    { tls: false, auth: 'token' },
    { tls: true, auth: 'token' },
  ];
  for (const mode of modes) {
    it(`${mode.tls ? 'TLS' : 'plain HTTP'}, auth ${mode.auth}: skopeo pushes and inspects; stop cleans up`, async () => {
      const registry = await startRegistry(mode);
      try {
        const layers = [randomLayer(4096), makeLayer({ 'etc/hostname': 'layerpipe\n' })];
        const pushed = await pushImage(registry, 'self/test:v1', { layers });
        const inspected = (await skopeoInspect(registry, 'self/test:v1')) as InspectOutput;
        assert.equal(inspected.Digest, pushed.manifestDigest);
        assert.deepEqual(inspected.Layers, layers.map((l) => l.digest));
        if (mode.tls) {
          // Without the CA, verification must fail: the certificate is really checked.
          await assert.rejects(skopeo(['inspect', '--creds', registry.creds ?? 'x:y', registry.ref('self/test:v1')]), /x509|certificate/);
        }
        if (mode.auth !== 'none') {
          await assert.rejects(skopeoInspect(registry, 'self/test:v1', [], 'none'), /unauthorized|authentication required/i);
          await assert.rejects(skopeoInspect(registry, 'self/test:v1', [], 'tester:wrong-password'), /unauthorized|authentication required|invalid username\/password/i);
        }
        if (mode.auth === 'token') {
          const served = registry.tokenServer?.requests ?? [];
          assert.ok(served.some((r) => r.user === 'tester' && r.granted.some((g) => g.name === 'self/test' && g.actions.includes('push'))), 'a token granting push was issued');
          assert.ok(served.some((r) => r.status === 401), 'the wrong password was refused by the token server');
        }
      } finally {
        await registry.stop();
      }
      assert.equal(processAlive(registry.pid), false, 'registry process is gone');
      assert.equal(existsSync(registry.dataDir), false, 'storage removed');
    });
  }

  it('the fault proxy forwards to a TLS registry (it listens on plain HTTP)', async () => {
    const registry = await startRegistry({ tls: true });
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port, tls: { ca: readFileSync(registry.caCertFile!) } });
    try {
      const layer = randomLayer(10_000);
      await pushImage(registry, 'tls/behind-proxy:v1', { layers: [layer] });
      const got = await httpGet(`http://${proxy.host}/v2/tls/behind-proxy/blobs/${layer.digest}`);
      assert.equal(got.status, 200);
      assert.equal(sha256(got.body), layer.digest);
    } finally {
      await proxy.close();
      await registry.stop();
    }
  });

  describe('images of every kind on one registry', () => {
    let registry: RunningRegistry;
    before(async () => {
      registry = await startRegistry();
    });
    after(async () => registry?.stop());

    it('Docker schema 2 (--format v2s2) keeps the config bytes and layers', async () => {
      const layers = [randomLayer(2048)];
      const pushed = await pushImage(registry, 'kinds/v2s2:latest', { layers }, { format: 'v2s2' });
      assert.equal(pushed.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
      const manifest = JSON.parse(pushed.manifest.toString('utf8')) as { config: { digest: string; mediaType: string }; layers: { digest: string; mediaType: string }[] };
      assert.equal(manifest.config.mediaType, 'application/vnd.docker.container.image.v1+json');
      assert.equal(manifest.config.digest, sha256(pushed.config));
      assert.deepEqual(manifest.layers.map((l) => [l.digest, l.mediaType]), [[layers[0].digest, 'application/vnd.docker.image.rootfs.diff.tar.gzip']]);
      const { stdout } = await skopeo(['inspect', '--config', '--raw', ...skopeoRegistryFlags(registry, ''), pushed.ref]);
      assert.equal(stdout, pushed.config.toString('utf8'));
    });

    for (const format of ['oci', 'v2s2'] as const) {
      it(`multi-arch list (${format}): skopeo picks the instance for --override-arch`, async () => {
        const pushed = await pushMultiArch(
          registry,
          `kinds/multi-${format}:latest`,
          [
            { platform: { os: 'linux', architecture: 'amd64' }, spec: { layers: [randomLayer(512)] } },
            { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, spec: { layers: [randomLayer(512)] } },
          ],
          { format },
        );
        assert.equal(pushed.mediaType, format === 'oci' ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json');
        assert.equal(pushed.instances.length, 2);
        const arm = pushed.instances[1];
        const inspected = (await skopeoInspect(registry, pushed.repoAndTag, ['--override-arch', 'arm64', '--override-variant', 'v8'])) as InspectOutput;
        // skopeo inspect names the list's digest but describes the chosen instance.
        assert.equal(inspected.Digest, pushed.manifestDigest);
        assert.equal(inspected.Architecture, 'arm64');
        assert.deepEqual(inspected.Layers, [arm.spec.layers[0].digest]);
        assert.equal(sha256(arm.manifest), arm.digest);
      });
    }

    it('a missing tag: skopeo inspect fails with "manifest unknown"', async () => {
      await assert.rejects(rawManifest(registry, 'kinds/nothing:here'), /manifest unknown|not found/i);
    });
  });

  describe('auth challenges and tokens, over plain HTTP', () => {
    it('htpasswd: /v2/ asks for Basic and accepts the user', async () => {
      const registry = await startRegistry({ auth: 'htpasswd' });
      try {
        const anonymous = await httpGet(`${registry.url}/v2/`);
        assert.equal(anonymous.status, 401);
        assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm=/);
        const user = await httpGet(`${registry.url}/v2/`, { headers: { Authorization: basicAuthHeader(registry.creds ?? '') } });
        assert.equal(user.status, 200);
      } finally {
        await registry.stop();
      }
    });

    it('token: the registry accepts issued tokens and refuses altered ones', async () => {
      const registry = await startRegistry({ auth: 'token' });
      try {
        await pushImage(registry, 'tok/img:v1', { layers: [randomLayer(100)] });
        const url = `${registry.url}/v2/tok/img/manifests/v1`;
        const challenge = await httpGet(url, { headers: { Accept: OCI_MANIFEST_ACCEPT } });
        assert.equal(challenge.status, 401);
        const header = String(challenge.headers['www-authenticate']);
        assert.match(header, /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="layerpipe-test-registry",scope="repository:tok\/img:pull"/);
        const tokenUrl = `${registry.tokenServer?.realm ?? ''}?service=layerpipe-test-registry&scope=repository:tok/img:pull`;
        const issued = await httpGet(tokenUrl, { headers: { Authorization: basicAuthHeader(registry.creds ?? '') } });
        assert.equal(issued.status, 200);
        const token = (JSON.parse(issued.body.toString('utf8')) as { token: string }).token;
        const ok = await httpGet(url, { headers: { Accept: OCI_MANIFEST_ACCEPT, Authorization: `Bearer ${token}` } });
        assert.equal(ok.status, 200);
        // Same signature over other claims: the registry must check the signature.
        const [head, claims, signature] = token.split('.');
        const altered = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as { sub: string };
        altered.sub = 'somebody-else';
        const forged = `${head}.${Buffer.from(JSON.stringify(altered)).toString('base64url')}.${signature}`;
        const refused = await httpGet(url, { headers: { Accept: OCI_MANIFEST_ACCEPT, Authorization: `Bearer ${forged}` } });
        assert.equal(refused.status, 401);
        // The OAuth2 password grant (POST) gives a working token too; a wrong password none.
        const form = (password: string): string => new URLSearchParams({ grant_type: 'password', username: 'tester', password, service: 'layerpipe-test-registry', scope: 'repository:tok/img:pull', client_id: 'test' }).toString();
        const post = { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } };
        const posted = await httpGet(registry.tokenServer?.realm ?? '', { ...post, body: form(registry.users.tester) });
        assert.equal(posted.status, 200);
        const postedToken = (JSON.parse(posted.body.toString('utf8')) as { access_token: string }).access_token;
        assert.equal((await httpGet(url, { headers: { Accept: OCI_MANIFEST_ACCEPT, Authorization: `Bearer ${postedToken}` } })).status, 200);
        assert.equal((await httpGet(registry.tokenServer?.realm ?? '', { ...post, body: form('wrong') })).status, 401);
        // An anonymous token grants nothing (anonymousPull is off).
        const anonymous = await httpGet(tokenUrl);
        const anonymousToken = (JSON.parse(anonymous.body.toString('utf8')) as { token: string }).token;
        const denied = await httpGet(url, { headers: { Accept: OCI_MANIFEST_ACCEPT, Authorization: `Bearer ${anonymousToken}` } });
        assert.equal(denied.status, 401);
      } finally {
        await registry.stop();
      }
    });
  });
});

describe('fault proxy', { skip }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  const BLOB_SIZE = 512 * 1024;
  let blobUrl: string;
  let blobDigest: string;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    image = await pushImage(registry, 'fault/img:v1', { layers: [randomLayer(BLOB_SIZE)] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    blobDigest = image.spec.layers[0].digest;
    blobUrl = `http://${proxy.host}/v2/fault/img/blobs/${blobDigest}`;
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => proxy.clearRules());

  const layerBytes = (): Buffer => image.spec.layers[0].compressed;

  it('passes requests through unchanged and records them', async () => {
    const before = proxy.requests.length;
    const got = await httpGet(blobUrl);
    assert.equal(got.status, 200);
    assert.equal(got.failure, undefined);
    assert.equal(sha256(got.body), blobDigest);
    const seen = proxy.requests.slice(before);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].status, 200);
    assert.equal(seen[0].bodyBytes, layerBytes().length);
    assert.equal(seen[0].completed, true);
    assert.equal(seen[0].range, undefined);
  });

  it('cut after N bytes; a Range request for the rest completes the blob', async () => {
    proxy.addRule({ match: match.blobGet(blobDigest), action: { kind: 'cut', afterBytes: 100_000 } });
    const first = await httpGet(blobUrl);
    assert.equal(first.status, 200);
    assert.equal(first.failure, 'aborted');
    assert.equal(first.body.length, 100_000);
    const rest = await httpGet(blobUrl, { headers: { Range: 'bytes=100000-' } });
    assert.equal(rest.status, 206);
    assert.equal(sha256(Buffer.concat([first.body, rest.body])), blobDigest);
    const seen = proxy.seen(match.blobGet(blobDigest)).slice(-2);
    assert.deepEqual(seen.map((r) => [r.fault, r.range, r.completed]), [['cut', undefined, false], [undefined, 'bytes=100000-', true]]);
  });

  it('cut after 0 bytes sends headers only', async () => {
    proxy.addRule({ match: match.blobGet(), action: { kind: 'cut', afterBytes: 0 } });
    const got = await httpGet(blobUrl);
    assert.equal(got.status, 200);
    assert.equal(got.body.length, 0);
    assert.equal(got.failure, 'aborted');
  });

  it('a stall with forMs holds the rest of the body that long', async () => {
    proxy.addRule({ match: match.blobGet(), action: { kind: 'stall', afterBytes: 65_536, forMs: 400 } });
    const got = await httpGet(blobUrl);
    assert.equal(sha256(got.body), blobDigest);
    let received = 0;
    let gap = 0;
    for (let i = 0; i < got.chunkTimes.length; i++) {
      received += got.chunkTimes[i].bytes;
      if (received === 65_536 && i + 1 < got.chunkTimes.length) gap = got.chunkTimes[i + 1].at - got.chunkTimes[i].at;
    }
    assert.ok(gap >= 350, `gap after the stall point was ${gap} ms`);
  });

  it('a stall in the last chunk holds the end of the response too', async () => {
    proxy.addRule({ match: match.blobGet(), action: { kind: 'stall', afterBytes: layerBytes().length - 10, forMs: 300 } });
    const started = Date.now();
    const got = await httpGet(blobUrl);
    assert.equal(sha256(got.body), blobDigest);
    assert.ok(Date.now() - started >= 280, `ended after ${Date.now() - started} ms`);
  });

  it('a stall without end holds until the client gives up', async () => {
    proxy.addRule({ match: match.blobGet(), action: { kind: 'stall', afterBytes: 1000 } });
    const got = await httpGet(blobUrl, { idleTimeoutMs: 300 });
    assert.equal(got.failure, 'timeout');
    assert.equal(got.body.length, 1000);
    const after = await httpGet(blobUrl);
    assert.equal(sha256(after.body), blobDigest, 'the next request passes');
  });

  it('429 with Retry-After, then the request passes', async () => {
    proxy.addRule({ match: match.blobGet(), action: { kind: 'status', status: 429, headers: { 'Retry-After': '1' } } });
    const limited = await httpGet(blobUrl);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['retry-after'], '1');
    const passed = await httpGet(blobUrl);
    assert.equal(passed.status, 200);
    assert.equal(sha256(passed.body), blobDigest);
  });

  it('503 N times, then passes; skip lets earlier requests through', async () => {
    proxy.addRule({ match: match.blobGet(), action: { kind: 'status', status: 503 }, times: 3, skip: 1 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await httpGet(blobUrl)).status);
    assert.deepEqual(statuses, [200, 503, 503, 503, 200]);
    assert.equal(proxy.pendingRules(), 0);
  });

  it('corrupt replaces body bytes at an offset, keeping the length', async () => {
    proxy.addRule({ match: match.blobGet(), action: { kind: 'corrupt', offset: 300_000 } });
    const got = await httpGet(blobUrl);
    assert.equal(got.status, 200);
    const original = layerBytes();
    assert.equal(got.body.length, original.length);
    assert.notEqual(sha256(got.body), blobDigest);
    const differing = [...got.body.keys()].filter((i) => got.body[i] !== original[i]);
    assert.deepEqual(differing, [300_000]);
    proxy.addRule({ match: match.blobGet(), action: { kind: 'corrupt', offset: 10, bytes: Buffer.from('XYZ') } });
    const replaced = await httpGet(blobUrl);
    assert.equal(replaced.body.subarray(10, 13).toString(), 'XYZ');
  });

  it('skopeo reaches the registry through the proxy; a cut blob fails skopeo 1.9.3 (no resume)', async () => {
    const firstRequest = proxy.requests.length;
    const viaProxy = { ...registry, host: proxy.host, ref: (r: string) => `docker://${proxy.host}/${r}` } as RunningRegistry;
    const inspected = (await skopeoInspect(viaProxy, 'fault/img:v1')) as InspectOutput;
    assert.equal(inspected.Digest, image.manifestDigest);
    assert.ok(proxy.seen(match.manifest()).length > 0);
    proxy.addRule({ match: match.blobGet(blobDigest), action: { kind: 'cut', afterBytes: 1000 }, times: Infinity });
    const dest = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-fault-skopeo-'));
    try {
      await assert.rejects(skopeo(['--insecure-policy', 'copy', ...skopeoRegistryFlags(viaProxy, 'src-'), viaProxy.ref('fault/img:v1'), `oci:${dest}:x`]), /unexpected EOF|connection reset|EOF/);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
    const blobGets = proxy.requests.slice(firstRequest).filter(match.blobGet(blobDigest));
    assert.ok(blobGets.length >= 1 && blobGets.every((r) => r.range === undefined && r.fault === 'cut'), 'skopeo 1.9.3 never asks for a range');
  });
});
