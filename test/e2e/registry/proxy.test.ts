/**
 * docker:// end to end: `bin/layerpipe experimental-image-proxy`, driven by the TypeScript
 * client, reads images from real docker-registry instances: plain HTTP, TLS with a private CA,
 * htpasswd Basic auth, token auth; credentials from flags, auth files and credential helpers;
 * mirrors from registries.conf. Where a setting must fail, skopeo 1.9.3 is asked too, so the
 * expectation is the reference's behaviour, not a guess.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLayer, randomLayer, type ImageSpec } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { splitCreds, writeAuthFile, writeCredentialHelper, writeRegistriesConf } from '../../harness/registry-credentials';
import { pushImage, skopeo, type PushedSingleImage } from '../../harness/registry-images';
import { proxyErrorOf, snapshotImage, tlsFlags, withProxy, type ImageSnapshot, type ProxyProgram, type SpawnOptions } from '../../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const PROGRAMS: readonly ProxyProgram[] = ['layerpipe', 'skopeo'];
const REPO_TAG = 'e2e/app:v1';

function imageSpec(): ImageSpec {
  return { layers: [randomLayer(300 * 1024), makeLayer({ 'etc/os-release': 'ID=layerpipe-test\n' })] };
}

/** What the pushed image must look like through the proxy (pushed as OCI: served unchanged). */
function assertSnapshotOf(snapshot: ImageSnapshot, pushed: PushedSingleImage): void {
  assert.equal(snapshot.manifestDigest, pushed.manifestDigest);
  assert.deepEqual(snapshot.manifest, JSON.parse(pushed.manifest.toString('utf8')));
  const config = JSON.parse(pushed.config.toString('utf8')) as { config: unknown; created: string };
  // The config is re-serialised in Go's style (RFC 3339 without trailing zeros): same instant.
  const served = snapshot.fullConfig as { created: string };
  assert.equal(Date.parse(served.created), Date.parse(config.created));
  assert.deepEqual({ ...served, created: '' }, { ...config, created: '' });
  assert.deepEqual(snapshot.config, config.config);
  assert.deepEqual(snapshot.layers, pushed.spec.layers.map((l) => ({ digest: l.digest, length: l.compressed.length })));
}

async function snapshotWith(opts: SpawnOptions, ref: string): Promise<ImageSnapshot> {
  return withProxy(opts, (proxy) => snapshotImage(proxy, ref));
}

/** OpenImage must fail, for layerpipe and for skopeo alike; the errors' texts are returned. */
async function openFailsForBoth(args: readonly string[], ref: string, env: Readonly<Record<string, string>> = {}): Promise<Record<ProxyProgram, string>> {
  const messages = { layerpipe: '', skopeo: '' };
  for (const program of PROGRAMS) {
    const err = await withProxy({ program, args, env }, (proxy) => proxyErrorOf(proxy.openImage(ref)));
    messages[program] = err.message;
  }
  return messages;
}

describe('docker:// end to end: transports, TLS and auth', { skip }, () => {
  let plain: RunningRegistry;
  let tls: RunningRegistry;
  let basic: RunningRegistry;
  let token: RunningRegistry;
  const pushed = new Map<RunningRegistry, PushedSingleImage>();
  let tmp: string;

  before(async () => {
    assertRegistryTools();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-e2e-'));
    [plain, tls, basic, token] = await Promise.all([
      startRegistry(),
      startRegistry({ tls: true }),
      startRegistry({ tls: true, auth: 'htpasswd' }),
      startRegistry({ auth: 'token' }),
    ]);
    for (const registry of [plain, tls, basic, token]) pushed.set(registry, await pushImage(registry, REPO_TAG, imageSpec()));
  });
  after(async () => {
    await Promise.all([plain, tls, basic, token].map((r) => r?.stop()));
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });
  const image = (registry: RunningRegistry): PushedSingleImage => pushed.get(registry)!;

  it('plain HTTP with --tls-verify=false: manifest, configs and layers as pushed', async () => {
    assertSnapshotOf(await snapshotWith({ args: ['--tls-verify=false'] }, plain.ref(REPO_TAG)), image(plain));
  });

  it('plain HTTP without --tls-verify=false is refused (HTTPS is required), as by skopeo', async () => {
    await openFailsForBoth([], plain.ref(REPO_TAG));
  });

  it('TLS with the CA through --cert-dir', async () => {
    assertSnapshotOf(await snapshotWith({ args: ['--cert-dir', tls.certDir!] }, tls.ref(REPO_TAG)), image(tls));
  });

  it('TLS without the CA fails certificate verification, as with skopeo', async () => {
    const messages = await openFailsForBoth([], tls.ref(REPO_TAG));
    assert.match(messages.skopeo, /x509|certificate/i);
    assert.match(messages.layerpipe, /certificate|x509|verify/i);
  });

  it('TLS with --tls-verify=false reads without the CA', async () => {
    assertSnapshotOf(await snapshotWith({ args: ['--tls-verify=false'] }, tls.ref(REPO_TAG)), image(tls));
  });

  it('htpasswd Basic auth with --creds', async () => {
    assertSnapshotOf(await snapshotWith({ args: [...tlsFlags(basic), '--creds', basic.creds!] }, basic.ref(REPO_TAG)), image(basic));
  });

  it('--debug logs requests and replies to stderr, never the password or its Basic header', async () => {
    const { password } = splitCreds(basic.creds!);
    const stderr = await withProxy({ args: [...tlsFlags(basic), '--creds', basic.creds!, '--debug'] }, async (proxy) => {
      await snapshotImage(proxy, basic.ref(REPO_TAG));
      return proxy.stderr;
    });
    assert.match(stderr, /request OpenImage/);
    assert.match(stderr, /GET \S+\/v2\//, 'registry requests are logged');
    assert.ok(!stderr.includes(password), 'the password never appears');
    assert.ok(!stderr.includes(Buffer.from(basic.creds!).toString('base64')), 'nor the Basic credentials');
  });

  it('htpasswd: no credentials, or a wrong password, are refused as by skopeo', async () => {
    const anonymous = await openFailsForBoth(tlsFlags(basic), basic.ref(REPO_TAG));
    assert.match(anonymous.layerpipe, /unauthorized|authentication required|denied|401/i);
    const wrong = await openFailsForBoth([...tlsFlags(basic), '--creds', 'tester:not-the-password'], basic.ref(REPO_TAG));
    assert.match(wrong.layerpipe, /unauthorized|authentication required|denied|401|invalid username\/password/i);
  });

  it('htpasswd with --authfile', async () => {
    const authFile = writeAuthFile(path.join(tmp, 'basic-auth.json'), { [basic.host]: splitCreds(basic.creds!) });
    assertSnapshotOf(await snapshotWith({ args: [...tlsFlags(basic), '--authfile', authFile] }, basic.ref(REPO_TAG)), image(basic));
  });

  it('--no-creds ignores the auth file (and is refused by the registry)', async () => {
    const authFile = writeAuthFile(path.join(tmp, 'ignored-auth.json'), { [basic.host]: splitCreds(basic.creds!) });
    await openFailsForBoth([...tlsFlags(basic), '--authfile', authFile, '--no-creds'], basic.ref(REPO_TAG));
  });

  it('token auth with --creds: a pull-only token for the repository', async () => {
    const server = token.tokenServer!;
    const before = server.requests.length;
    assertSnapshotOf(await snapshotWith({ args: [...tlsFlags(token), '--creds', token.creds!] }, token.ref(REPO_TAG)), image(token));
    const mine = server.requests.slice(before);
    assert.ok(mine.length >= 1, 'layerpipe asked the token server');
    assert.ok(mine.every((r) => r.user === 'tester' && r.status === 200));
    assert.ok(mine.some((r) => r.scopes.includes('repository:e2e/app:pull')), `scopes asked: ${JSON.stringify(mine.map((r) => r.scopes))}`);
    assert.ok(mine.every((r) => r.granted.every((g) => !g.actions.includes('push'))), 'no push access asked for');
  });

  it('token auth with --authfile; anonymous is refused as by skopeo', async () => {
    const authFile = writeAuthFile(path.join(tmp, 'token-auth.json'), { [token.host]: splitCreds(token.creds!) });
    assertSnapshotOf(await snapshotWith({ args: [...tlsFlags(token), '--authfile', authFile] }, token.ref(REPO_TAG)), image(token));
    await openFailsForBoth(tlsFlags(token), token.ref(REPO_TAG));
  });

  it('a credential helper named by the auth file (credHelpers), found on PATH', async () => {
    const helper = writeCredentialHelper(path.join(tmp, 'bin-authfile'), 'lptest', { [basic.host]: splitCreds(basic.creds!) });
    const authFile = writeAuthFile(path.join(tmp, 'helper-auth.json'), {}, { [basic.host]: helper.name });
    const env = { PATH: `${helper.binDir}:${process.env.PATH ?? ''}` };
    assertSnapshotOf(await snapshotWith({ args: [...tlsFlags(basic), '--authfile', authFile], env }, basic.ref(REPO_TAG)), image(basic));
    assert.ok(helper.calls().includes(`get ${basic.host}`), `helper calls: ${JSON.stringify(helper.calls())}`);
  });

  it('a credential helper named by registries.conf (credential-helpers)', async () => {
    const helper = writeCredentialHelper(path.join(tmp, 'bin-conf'), 'lpconf', { [token.host]: splitCreds(token.creds!) });
    const conf = writeRegistriesConf(path.join(tmp, 'helpers-registries.conf'), [], [helper.name]);
    const env = { PATH: `${helper.binDir}:${process.env.PATH ?? ''}` };
    // The oracle first: skopeo 1.9.3 reads the same file the same way.
    await skopeo(['--registries-conf', conf, 'inspect', ...tlsFlags(token), token.ref(REPO_TAG)], { env }).catch((err: Error) => assert.fail(`skopeo: ${err.message}`));
    const callsBefore = helper.calls().length;
    const args = ['--registries-conf', conf, ...tlsFlags(token)];
    assertSnapshotOf(await snapshotWith({ args, env }, token.ref(REPO_TAG)), image(token));
    const mine = helper.calls().slice(callsBefore);
    assert.ok(mine.includes(`get ${token.host}`), `layerpipe's helper calls: ${JSON.stringify(mine)}`);
  });
});

describe('docker:// end to end: mirrors from registries.conf', { skip }, () => {
  let primary: RunningRegistry;
  let mirror: RunningRegistry;
  let tmp: string;
  let conf: string;
  let mirrored: PushedSingleImage;
  let primaryOnly: PushedSingleImage;

  before(async () => {
    assertRegistryTools();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-e2e-mirror-'));
    [primary, mirror] = await Promise.all([startRegistry(), startRegistry()]);
    mirrored = await pushImage(mirror, 'e2e/mirrored:v1', imageSpec());
    primaryOnly = await pushImage(primary, 'e2e/primary-only:v1', imageSpec());
    // Both are plain HTTP: `insecure = true` must be what lets them be used (no --tls-verify flag).
    conf = writeRegistriesConf(path.join(tmp, 'registries.conf'), [
      { location: primary.host, insecure: true, mirrors: [{ location: mirror.host, insecure: true }] },
    ]);
  });
  after(async () => {
    await Promise.all([primary?.stop(), mirror?.stop()]);
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('an image only on the mirror is read through the primary name, as skopeo reads it', async () => {
    const ref = primary.ref('e2e/mirrored:v1');
    const inspected = JSON.parse((await skopeo(['--registries-conf', conf, 'inspect', '--no-tags', ref])).stdout) as { Digest: string };
    assert.equal(inspected.Digest, mirrored.manifestDigest);
    assertSnapshotOf(await snapshotWith({ args: ['--registries-conf', conf] }, ref), mirrored);
  });

  it('an image the mirror lacks falls back to the primary', async () => {
    assertSnapshotOf(await snapshotWith({ args: ['--registries-conf', conf] }, primary.ref('e2e/primary-only:v1')), primaryOnly);
  });

  it('a tag on neither: OpenImage fails, OpenImageOptional answers "no image"', async () => {
    await withProxy({ args: ['--registries-conf', conf] }, async (proxy) => {
      await proxyErrorOf(proxy.openImage(primary.ref('e2e/nowhere:v1')));
      assert.equal(await proxy.openImageOptional(primary.ref('e2e/nowhere:v1')), null);
    });
  });

  it('a blocked primary is refused without asking it', async () => {
    const blockedConf = writeRegistriesConf(path.join(tmp, 'blocked.conf'), [{ location: primary.host, insecure: true, blocked: true }]);
    const messages = await openFailsForBoth(['--registries-conf', blockedConf], primary.ref('e2e/primary-only:v1'));
    assert.match(messages.layerpipe, /blocked/i);
  });
});
