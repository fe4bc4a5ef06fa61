/**
 * The docker:// transport against Debian's docker-registry: images pushed with real skopeo
 * and read back through parseImageName + OpenedImage, over plain HTTP and TLS, anonymous,
 * with htpasswd (Basic) and with token auth; skopeo's answers are the reference.
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { AccessDeniedError, BlobNotFoundError, ImageNotFoundError, InvalidArgumentError, LayerpipeError } from '../../../protocol/errors';
import { skopeoErrorCode } from '../../../server/wires/skopeo/error-code';
import { sha256Digest } from '../../../server/image/digest';
import { openImage, readBlob, rejection, TestContexts } from '../../harness/docker-source';
import { neverAborted } from '../../harness/context';
import { makeLayer, randomLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, pushMultiArch, skopeoInspect, type PushedSingleImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
/** Fast retries for tests, as LAYERPIPE_RETRY_DELAY_MS and LAYERPIPE_RETRY_ATTEMPTS would set them. */
const TUNING = { retryDelayMs: 20, retryAttempts: 3 } as const;
/** Every test's contexts (each its own registry pool), closed after it. */
const contexts = new TestContexts();
const contextWith = (registry: Parameters<TestContexts['with']>[0], extra?: Parameters<TestContexts['with']>[1]) => contexts.with({ ...TUNING, ...registry }, extra);

interface SkopeoInspect {
  Digest: string;
  Layers: string[];
}

describe('docker:// on a plain HTTP registry', { skip, timeout: 180_000 }, () => {
  afterEach(() => contexts.closeAll());
  let registry: RunningRegistry;
  let oci: PushedSingleImage;
  let docker: PushedSingleImage;
  const layers = [makeLayer({ 'etc/hello': 'world\n' }), randomLayer(300_000)];

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    oci = await pushImage(registry, 'proj/oci:v1', { layers });
    docker = await pushImage(registry, 'proj/docker:v1', { layers }, { format: 'v2s2' });
  });
  after(async () => {
    await registry?.stop();
  });

  const ctx = () => contextWith({ tlsVerify: false });

  it('opens an OCI image by tag: same digest as skopeo, same bytes', async () => {
    const image = await openImage(oci.ref, ctx());
    const inspected = (await skopeoInspect(registry, 'proj/oci:v1')) as SkopeoInspect;
    assert.equal(image.manifestDigest, oci.manifestDigest);
    assert.equal(image.manifestDigest, inspected.Digest);
    assert.deepEqual(image.manifestBytes, oci.manifest);
    assert.deepEqual(image.layerInfos().map((l) => l.digest), inspected.Layers);
    const config = await image.storedConfig();
    assert.deepEqual(config, oci.config);
    for (const [i, layer] of layers.entries()) {
      const blob = await readBlob(image, layer.digest, layer.compressed.length);
      assert.equal(blob.size, layer.compressed.length, `layer ${i} size`);
      assert.ok(blob.bytes.equals(layer.compressed), `layer ${i} bytes`);
    }
    await image.close();
  });

  it('opens by digest, and by tag and digest together (the digest decides)', async () => {
    const byDigest = await openImage(`docker://${registry.host}/proj/oci@${oci.manifestDigest}`, ctx());
    assert.equal(byDigest.manifestDigest, oci.manifestDigest);
    const both = await openImage(`docker://${registry.host}/proj/oci:no-such-tag@${oci.manifestDigest}`, ctx());
    assert.equal(both.manifestDigest, oci.manifestDigest);
  });

  it('converts a Docker schema 2 image like skopeo (digest of the stored manifest)', async () => {
    const image = await openImage(docker.ref, ctx());
    assert.equal(image.manifestType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(image.manifestDigest, docker.manifestDigest);
    const converted = JSON.parse((await image.ociManifest()).toString('utf8')) as { mediaType: string; config: { digest: string } };
    assert.equal(converted.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(converted.config.digest, sha256Digest(await image.ociConfig()));
  });

  it('picks the platform instance of a multi-arch list and verifies it', async () => {
    const spec = (n: string) => ({ layers: [makeLayer({ [n]: n })] });
    const list = await pushMultiArch(registry, 'proj/multi:v1', [
      { platform: { os: 'linux', architecture: 'amd64' }, spec: spec('amd') },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, spec: spec('arm') },
    ]);
    const image = await openImage(list.ref, contextWith({ tlsVerify: false }, { architectureChoice: 'arm64', osChoice: 'linux' }));
    const arm = list.instances.find((i) => i.platform.architecture === 'arm64')!;
    assert.equal(image.manifestDigest, arm.digest);
    assert.equal(image.listDigest, list.manifestDigest);
    const layer = arm.spec.layers[0]!;
    assert.ok((await readBlob(image, layer.digest)).bytes.equals(layer.compressed));
  });

  it('answers ImageNotFoundError for a missing tag, repository or digest', async () => {
    for (const ref of [
      `docker://${registry.host}/proj/oci:missing`,
      `docker://${registry.host}/no/such/repo:v1`,
      `docker://${registry.host}/proj/oci@sha256:${'0'.repeat(64)}`,
    ]) {
      const err = await rejection(openImage(ref, ctx()), ImageNotFoundError);
      assert.match(err.message, /manifest unknown|name unknown|not found/i, ref);
      assert.equal(skopeoErrorCode(err), 'other');
    }
  });

  it('answers BlobNotFoundError for a blob the registry lacks', async () => {
    const image = await openImage(oci.ref, ctx());
    await rejection(image.openBlob({ digest: `sha256:${'1'.repeat(64)}`, size: -1, signal: neverAborted() }), BlobNotFoundError);
  });

  it('refuses plain HTTP unless TLS verification is off or the registry is insecure', async () => {
    const err = await rejection(openImage(oci.ref, contextWith({})), LayerpipeError);
    assert.match(err.message, /pinging container registry/);
    assert.notEqual(skopeoErrorCode(err), 'EPIPE');
  });

  it('refuses a malformed digest in a blob request before any request', async () => {
    const image = await openImage(oci.ref, ctx());
    await rejection(image.openBlob({ digest: 'sha256:../../etc', size: -1, signal: neverAborted() }), InvalidArgumentError);
  });
});

describe('docker:// over TLS', { skip, timeout: 180_000 }, () => {
  afterEach(() => contexts.closeAll());
  let registry: RunningRegistry;
  let image: PushedSingleImage;
  const layer = makeLayer({ tls: 'yes' });

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ tls: true });
    image = await pushImage(registry, 'tls/img:v1', { layers: [layer] });
  });
  after(async () => {
    await registry?.stop();
  });

  it('verifies the server with --cert-dir (CA added to the system ones)', async () => {
    const opened = await openImage(image.ref, contextWith({ certDir: registry.certDir }));
    assert.equal(opened.manifestDigest, image.manifestDigest);
    assert.ok((await readBlob(opened, layer.digest)).bytes.equals(layer.compressed));
  });

  it('fails on an unknown CA, not as retryable', async () => {
    const err = await rejection(openImage(image.ref, contextWith({})), LayerpipeError);
    assert.match(err.message, /certificate|self.signed|issuer/i);
    assert.equal(skopeoErrorCode(err), 'other');
  });

  it('accepts the unknown CA with --tls-verify=false', async () => {
    const opened = await openImage(image.ref, contextWith({ tlsVerify: false }));
    assert.equal(opened.manifestDigest, image.manifestDigest);
  });

  it('finds the CA in certs.d under $HOME/.config/containers/certs.d/HOST:PORT', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-home-'));
    const savedHome = process.env.HOME;
    try {
      const dir = path.join(home, '.config', 'containers', 'certs.d', registry.host);
      mkdirSync(dir, { recursive: true });
      copyFileSync(registry.caCertFile!, path.join(dir, 'ca.crt'));
      process.env.HOME = home;
      const opened = await openImage(image.ref, contextWith({}));
      assert.equal(opened.manifestDigest, image.manifestDigest);
    } finally {
      process.env.HOME = savedHome;
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('reads an insecure registry of registries.conf over TLS without verification', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-insecure-'));
    try {
      const conf = path.join(dir, 'registries.conf');
      writeFileSync(conf, `[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n`);
      const opened = await openImage(image.ref, contextWith({ registriesConf: conf }));
      assert.equal(opened.manifestDigest, image.manifestDigest);
      // --tls-verify=true overrides the file, as in containers tools.
      await rejection(openImage(image.ref, contextWith({ registriesConf: conf, tlsVerify: true })), LayerpipeError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('verifies with --tls-verify=true even when certificates are given', async () => {
    const opened = await openImage(image.ref, contextWith({ tlsVerify: true, certDir: registry.certDir }));
    assert.equal(opened.manifestDigest, image.manifestDigest);
  });
});

describe('docker:// with htpasswd (Basic) auth', { skip, timeout: 180_000 }, () => {
  afterEach(() => contexts.closeAll());
  let registry: RunningRegistry;
  let image: PushedSingleImage;
  let tmp: string;
  const layer = makeLayer({ basic: 'auth' });

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ auth: 'htpasswd' });
    image = await pushImage(registry, 'basic/img:v1', { layers: [layer] });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-docker-auth-'));
  });
  after(async () => {
    await registry?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  const creds = () => {
    const [username, password] = registry.creds!.split(':') as [string, string];
    return { username, password };
  };

  it('pulls with --creds', async () => {
    const opened = await openImage(image.ref, contextWith({ tlsVerify: false, credentials: creds() }));
    assert.equal(opened.manifestDigest, image.manifestDigest);
    assert.ok((await readBlob(opened, layer.digest)).bytes.equals(layer.compressed));
  });

  it('is denied without credentials or with a wrong password', async () => {
    await rejection(openImage(image.ref, contextWith({ tlsVerify: false })), AccessDeniedError);
    await rejection(openImage(image.ref, contextWith({ tlsVerify: false, credentials: { username: creds().username, password: 'wrong' } })), AccessDeniedError);
  });

  it('reads credentials from --authfile, also through /proc/self/fd/N', async () => {
    const file = path.join(tmp, 'auth.json');
    writeFileSync(file, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(registry.creds!).toString('base64') } } }));
    const opened = await openImage(image.ref, contextWith({ tlsVerify: false, authFile: file }));
    assert.equal(opened.manifestDigest, image.manifestDigest);
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(file, 'r');
    try {
      const viaFd = await openImage(image.ref, contextWith({ tlsVerify: false, authFile: `/proc/self/fd/${fd}` }));
      assert.equal(viaFd.manifestDigest, image.manifestDigest);
    } finally {
      closeSync(fd);
    }
  });

  it('ignores the auth file with --no-creds', async () => {
    const file = path.join(tmp, 'auth2.json');
    writeFileSync(file, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(registry.creds!).toString('base64') } } }));
    await rejection(openImage(image.ref, contextWith({ tlsVerify: false, authFile: file, noCreds: true })), AccessDeniedError);
  });
});

describe('docker:// with token auth', { skip, timeout: 180_000 }, () => {
  afterEach(() => contexts.closeAll());
  let registry: RunningRegistry;
  let image: PushedSingleImage;
  const layer = makeLayer({ token: 'auth' });

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ auth: 'token', anonymousPull: true, users: { tester: 'pa55-w0rd', limited: 'pw2' } });
    image = await pushImage(registry, 'tok/img:v1', { layers: [layer] });
  });
  after(async () => {
    await registry?.stop();
  });

  it('pulls with credentials through the token flow, one token per scope for many requests', async () => {
    const before = registry.tokenServer!.requests.length;
    // One context, as one session: the token is its registry pool's, reused by the image opened again.
    const session = contextWith({ tlsVerify: false, credentials: { username: 'tester', password: 'pa55-w0rd' } });
    const opened = await openImage(image.ref, session);
    assert.ok((await readBlob(opened, layer.digest)).bytes.equals(layer.compressed));
    await opened.storedConfig();
    const again = await openImage(image.ref, session);
    assert.equal(again.manifestDigest, image.manifestDigest);
    const asked = registry.tokenServer!.requests.slice(before);
    assert.equal(asked.length, 1, JSON.stringify(asked));
    assert.equal(asked[0]!.user, 'tester');
    assert.deepEqual(asked[0]!.scopes, ['repository:tok/img:pull']);
  });

  it('pulls anonymously with an anonymous token', async () => {
    const before = registry.tokenServer!.requests.length;
    const opened = await openImage(image.ref, contextWith({ tlsVerify: false }));
    assert.equal(opened.manifestDigest, image.manifestDigest);
    const asked = registry.tokenServer!.requests.slice(before);
    assert.ok(asked.length >= 1 && asked.every((r) => r.user === undefined), JSON.stringify(asked));
  });

  it('refuses wrong credentials at the token endpoint', async () => {
    const err = await rejection(openImage(image.ref, contextWith({ tlsVerify: false, credentials: { username: 'tester', password: 'nope' } })), AccessDeniedError);
    assert.match(err.message, /invalid username\/password/);
    assert.ok(!err.message.includes('nope'));
  });

  it('sends --registry-token as the bearer token without asking the token server', async () => {
    // Get a real token the way any client would, then hand it over as --registry-token.
    const realm = new URL(registry.tokenServer!.realm);
    realm.searchParams.set('service', 'layerpipe-test-registry');
    realm.searchParams.set('scope', 'repository:tok/img:pull');
    const res = await fetch(realm, { headers: { authorization: `Basic ${Buffer.from('tester:pa55-w0rd').toString('base64')}` } });
    const token = ((await res.json()) as { token: string }).token;
    const before = registry.tokenServer!.requests.length;
    const opened = await openImage(image.ref, contextWith({ tlsVerify: false, registryToken: token }));
    assert.equal(opened.manifestDigest, image.manifestDigest);
    assert.equal(registry.tokenServer!.requests.length, before);
    await rejection(openImage(image.ref, contextWith({ tlsVerify: false, registryToken: 'not-a-token' })), AccessDeniedError);
  });
});
