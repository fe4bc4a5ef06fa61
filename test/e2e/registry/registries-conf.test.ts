/**
 * docker:// with containers-registries.conf(5): mirrors tried in order before the primary,
 * pull-from-mirror, prefix/location rewrites, insecure and blocked registries, short names
 * searched in unqualified-search-registries or mapped by [aliases], and short-name-mode.
 * Real registries, each behind a fault proxy that records which one was asked.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { AccessDeniedError, BlockedRegistryError, ImageNotFoundError, InvalidArgumentError, RetryableError } from '../../../protocol/errors';
import { openImage, readBlob, rejection, TestContexts } from '../../harness/docker-source';
import { match, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy';
import { makeLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, type PushedSingleImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
/** Fast retries for tests, as LAYERPIPE_RETRY_DELAY_MS and LAYERPIPE_RETRY_ATTEMPTS would set them. */
const TUNING = { retryDelayMs: 20, retryAttempts: 2 } as const;

interface Site {
  registry: RunningRegistry;
  proxy: FaultProxy;
}

async function startSite(opts: Parameters<typeof startRegistry>[0] = {}): Promise<Site> {
  const registry = await startRegistry(opts);
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  return { registry, proxy };
}

/** Manifest requests a site's proxy saw since `from`. */
function manifestHits(site: Site, from: number): string[] {
  return site.proxy.requests.slice(from).filter((r) => match.manifest()(r)).map((r) => r.path);
}

describe('docker:// and registries.conf', { skip, timeout: 180_000 }, () => {
  let primary: Site;
  let mirror: Site;
  let second: Site;
  let tmp: string;
  let onPrimary: PushedSingleImage;
  let onMirror: PushedSingleImage;
  const layer = makeLayer({ from: 'primary' });
  const mirrorLayer = makeLayer({ from: 'mirror' });

  before(async () => {
    assertRegistryTools();
    [primary, mirror, second] = await Promise.all([startSite(), startSite(), startSite()]);
    onPrimary = await pushImage(primary.registry, 'team/app:v1', { layers: [layer] });
    // The mirror holds different content under the same name, so which one answered shows.
    onMirror = await pushImage(mirror.registry, 'team/app:v1', { layers: [mirrorLayer] });
    await pushImage(mirror.registry, 'mirrored/team/app:v1', { layers: [mirrorLayer] });
    await pushImage(second.registry, 'onlysecond:v1', { layers: [layer] });
    await pushImage(primary.registry, 'library/shortie:v1', { layers: [layer] });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-docker-regconf-'));
  });
  after(async () => {
    for (const site of [primary, mirror, second]) {
      await site?.proxy.close();
      await site?.registry.stop();
    }
    rmSync(tmp, { recursive: true, force: true });
  });
  beforeEach(() => {
    for (const site of [primary, mirror, second]) site.proxy.clearRules();
  });

  let confCount = 0;
  function conf(text: string): string {
    const file = path.join(tmp, `registries-${++confCount}.conf`);
    writeFileSync(file, text);
    return file;
  }

  /** No TLS flag: whether plain HTTP is allowed comes from `insecure` in the file. */
  const contexts = new TestContexts();
  afterEach(() => contexts.closeAll());
  const ctx = (registriesConf: string, extra: Parameters<TestContexts['with']>[0] = {}) => contexts.with({ registriesConf, ...TUNING, ...extra });

  /** Short names searched in primary then second, both over plain HTTP; `globals` go first. */
  const searchingBoth = (globals = '') => conf(`${globals}
unqualified-search-registries = ["${primary.proxy.host}", "${second.proxy.host}"]
[[registry]]
location = "${primary.proxy.host}"
insecure = true
[[registry]]
location = "${second.proxy.host}"
insecure = true
`);

  it('tries the mirror first and reads blobs from it', async () => {
    const file = conf(`
[[registry]]
location = "${primary.proxy.host}"
insecure = true
[[registry.mirror]]
location = "${mirror.proxy.host}"
insecure = true
`);
    const [p, m] = [primary.proxy.requests.length, mirror.proxy.requests.length];
    const image = await openImage(`docker://${primary.proxy.host}/team/app:v1`, ctx(file));
    assert.equal(image.manifestDigest, onMirror.manifestDigest);
    assert.ok((await readBlob(image, mirrorLayer.digest)).bytes.equals(mirrorLayer.compressed));
    assert.equal(manifestHits(primary, p).length, 0);
    assert.deepEqual(manifestHits(mirror, m), ['/v2/team/app/manifests/v1']);
  });

  it('falls back to the primary when the mirror lacks the image or fails', async () => {
    const file = conf(`
[[registry]]
location = "${primary.proxy.host}"
insecure = true
[[registry.mirror]]
location = "${second.proxy.host}"
insecure = true
[[registry.mirror]]
location = "${mirror.proxy.host}"
insecure = true
`);
    mirror.proxy.addRule({ match: match.manifest(), action: { kind: 'status', status: 500 }, times: Infinity });
    const [p, s] = [primary.proxy.requests.length, second.proxy.requests.length];
    const image = await openImage(`docker://${primary.proxy.host}/team/app:v1`, ctx(file));
    assert.equal(image.manifestDigest, onPrimary.manifestDigest);
    assert.deepEqual(manifestHits(second, s), ['/v2/team/app/manifests/v1']);
    assert.deepEqual(manifestHits(primary, p), ['/v2/team/app/manifests/v1']);
  });

  it('keeps the primary\'s error class, naming the mirrors\' failures', async () => {
    const file = conf(`
[[registry]]
location = "${primary.proxy.host}"
insecure = true
[[registry.mirror]]
location = "${mirror.proxy.host}"
insecure = true
`);
    const err = await rejection(openImage(`docker://${primary.proxy.host}/team/app:nope`, ctx(file)), ImageNotFoundError);
    assert.match(err.message, /mirrors also failed/);
    assert.ok(err.message.includes(mirror.proxy.host));
  });

  it('uses a digest-only mirror for digests but not for tags', async () => {
    const file = conf(`
[[registry]]
location = "${primary.proxy.host}"
insecure = true
[[registry.mirror]]
location = "${mirror.proxy.host}"
insecure = true
pull-from-mirror = "digest-only"
`);
    const m = mirror.proxy.requests.length;
    const byTag = await openImage(`docker://${primary.proxy.host}/team/app:v1`, ctx(file));
    assert.equal(byTag.manifestDigest, onPrimary.manifestDigest);
    assert.equal(manifestHits(mirror, m).length, 0);
    const byDigest = await openImage(`docker://${primary.proxy.host}/team/app@${onMirror.manifestDigest}`, ctx(file));
    assert.equal(byDigest.manifestDigest, onMirror.manifestDigest);
    assert.equal(manifestHits(mirror, m).length, 1);
  });

  it('rewrites a prefix to another location', async () => {
    const file = conf(`
[[registry]]
prefix = "example.test/team"
location = "${mirror.proxy.host}/mirrored/team"
insecure = true
`);
    const m = mirror.proxy.requests.length;
    const image = await openImage('docker://example.test/team/app:v1', ctx(file));
    assert.ok((await readBlob(image, mirrorLayer.digest)).bytes.equals(mirrorLayer.compressed));
    assert.deepEqual(manifestHits(mirror, m), ['/v2/mirrored/team/app/manifests/v1']);
  });

  it('refuses a blocked registry without asking it', async () => {
    const file = conf(`
[[registry]]
location = "${primary.proxy.host}"
blocked = true
`);
    const p = primary.proxy.requests.length;
    const err = await rejection(openImage(`docker://${primary.proxy.host}/team/app:v1`, ctx(file)), BlockedRegistryError);
    assert.match(err.message, /blocked/);
    assert.equal(primary.proxy.requests.length, p);
  });

  it('needs insecure = true (or --tls-verify=false) for plain HTTP', async () => {
    const file = conf(`
[[registry]]
location = "${second.proxy.host}"
insecure = false
`);
    const err = await rejection(openImage(`docker://${second.proxy.host}/onlysecond:v1`, ctx(file)), Error);
    assert.match(err.message, /pinging container registry/);
    const image = await openImage(`docker://${second.proxy.host}/onlysecond:v1`, ctx(file, { tlsVerify: false }));
    assert.ok(image.manifestDigest.startsWith('sha256:'));
  });

  it('searches short names in unqualified-search-registries, first that has it', async () => {
    const file = searchingBoth();
    const [p, s] = [primary.proxy.requests.length, second.proxy.requests.length];
    const image = await openImage('docker://onlysecond:v1', ctx(file));
    assert.ok(image.manifestDigest.startsWith('sha256:'));
    assert.deepEqual(manifestHits(primary, p), ['/v2/onlysecond/manifests/v1']);
    assert.deepEqual(manifestHits(second, s), ['/v2/onlysecond/manifests/v1']);
    const err = await rejection(openImage('docker://nowhere:v1', ctx(file)), ImageNotFoundError);
    assert.match(err.message, /unqualified-search-registries/);
  });

  it('does not call a short name missing when a search registry could not be asked', async () => {
    const file = searchingBoth();
    primary.proxy.addRule({ match: match.manifest(), action: { kind: 'status', status: 503 }, times: Infinity });
    await rejection(openImage('docker://nowhere:v1', ctx(file)), RetryableError);
  });

  it('maps a short name through [aliases] to one registry only, keeping the tag', async () => {
    // The alias wins although enforcing mode would refuse to choose between the search registries.
    const file = conf(`
short-name-mode = "enforcing"
unqualified-search-registries = ["${second.proxy.host}", "${mirror.proxy.host}"]
[aliases]
"teamapp" = "${primary.proxy.host}/team/app"
[[registry]]
location = "${primary.proxy.host}"
insecure = true
`);
    const [p, s, m] = [primary.proxy.requests.length, second.proxy.requests.length, mirror.proxy.requests.length];
    const image = await openImage('docker://teamapp:v1', ctx(file));
    assert.equal(image.manifestDigest, onPrimary.manifestDigest);
    assert.ok((await readBlob(image, layer.digest)).bytes.equals(layer.compressed));
    assert.deepEqual(manifestHits(primary, p), ['/v2/team/app/manifests/v1']);
    assert.equal(second.proxy.requests.length, s, 'search registries are not asked');
    assert.equal(mirror.proxy.requests.length, m);
    const byDigest = await openImage(`docker://teamapp@${onPrimary.manifestDigest}`, ctx(file));
    assert.equal(byDigest.manifestDigest, onPrimary.manifestDigest);
  });

  it('refuses an ambiguous short name under short-name-mode = "enforcing" without asking anyone', async () => {
    const file = searchingBoth('short-name-mode = "enforcing"');
    const [p, s] = [primary.proxy.requests.length, second.proxy.requests.length];
    const err = await rejection(openImage('docker://onlysecond:v1', ctx(file)), InvalidArgumentError);
    assert.match(err.message, /^short-name resolution enforced but cannot prompt without a TTY/);
    assert.ok(err.message.includes(file), err.message);
    assert.equal(primary.proxy.requests.length, p);
    assert.equal(second.proxy.requests.length, s);
    // A fully-qualified name is not affected.
    const image = await openImage(`docker://${second.proxy.host}/onlysecond:v1`, ctx(file));
    assert.ok(image.manifestDigest.startsWith('sha256:'));
  });

  it('sends --creds only to the registry named, not to a mirror elsewhere', async () => {
    // Both registries know the same user: a mirror that got the credentials would answer.
    const [guarded, guardedMirror] = await Promise.all([startSite({ auth: 'htpasswd' }), startSite({ auth: 'htpasswd' })]);
    try {
      await pushImage(guarded.registry, 'team/app:v1', { layers: [layer] });
      const mirrored = await pushImage(guardedMirror.registry, 'team/app:v1', { layers: [mirrorLayer] });
      const [username, password] = guarded.registry.creds!.split(':') as [string, string];
      const file = conf(`
[[registry]]
location = "${guarded.proxy.host}"
insecure = true
[[registry.mirror]]
location = "${guardedMirror.proxy.host}"
insecure = true
`);
      const m = guardedMirror.proxy.requests.length;
      const image = await openImage(`docker://${guarded.proxy.host}/team/app:v1`, ctx(file, { credentials: { username, password } }));
      assert.ok((await readBlob(image, layer.digest)).bytes.equals(layer.compressed), 'the primary answered');
      const toMirror = guardedMirror.proxy.requests.slice(m);
      assert.ok(toMirror.length > 0, 'the mirror was tried');
      assert.ok(toMirror.every((r) => r.headers.authorization === undefined), 'no credentials to the mirror');
      // Credentials for the mirror's own host come from the auth file, as for any registry.
      const authFile = path.join(tmp, 'mirror-auth.json');
      writeFileSync(authFile, JSON.stringify({ auths: { [guardedMirror.proxy.host]: { auth: Buffer.from(guardedMirror.registry.creds!).toString('base64') } } }));
      const viaMirror = await openImage(`docker://${guarded.proxy.host}/team/app:v1`, ctx(file, { credentials: { username, password }, authFile }));
      assert.equal(viaMirror.manifestDigest, mirrored.manifestDigest);
      await rejection(openImage(`docker://${guarded.proxy.host}/team/app:v1`, ctx(file)), AccessDeniedError);
    } finally {
      for (const site of [guarded, guardedMirror]) {
        await site.proxy.close();
        await site.registry.stop();
      }
    }
  });
});
