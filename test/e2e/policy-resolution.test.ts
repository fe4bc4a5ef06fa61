/**
 * Which manifest and which name the policy judges, against the real thing.
 *
 * Multi-arch: skopeo's proxy (containers' json-proxy) checks the policy on the top-level
 * UnparsedImage only: the signatures of the list's own digest, verified against the list's
 * bytes; the instance chosen afterwards is not checked. `skopeo copy` without --all checks the
 * chosen instance instead (its own signatures and bytes). Both agree when `skopeo copy --all
 * --sign-by` signed the list and every instance; when only one of them is signed they differ,
 * and layerpipe, a proxy, gives the proxy's verdict. skopeo copy's verdict is asserted too, so
 * that the difference stays known.
 *
 * Short names: the policy judges the name a short name resolved to (an alias), its scope and
 * its signed identity, as containers tools that resolve short names do.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { layerpipeVerdict as layerpipeVerdictOf, skopeoVerdict as skopeoVerdictOf, type Verdict } from '../harness/policy-verdicts';
import { makeLayer, writeImageBlobs, writeIndexBlob, writeLayoutIndex, writeOciImage } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { assertRegistryTools, findProgram, IN_CI, registrySuiteSkip } from '../harness/registry-tools';
import { createTestKeys, type TestKeys } from '../harness/signing';

const skip = registrySuiteSkip() || (findProgram('gpg') === undefined && !IN_CI ? 'gpg is missing: apt-get install gnupg' : false);

let tmp: string;
let keys: TestKeys;
let registry: RunningRegistry;
let registriesD: string;
let registriesConf: string;
let lookaside: string;
const digests = new Map<string, string>();
let instanceDigests: string[] = [];
let counter = 0;

function sk(args: readonly string[]): string {
  return execFileSync('skopeo', ['--insecure-policy', '--registries.d', registriesD, ...args], { env: keys.env, stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
}

function push(layout: string, repo: string, signBy: string | undefined, extra: readonly string[] = []): string {
  const digestFile = path.join(tmp, `digest-${++counter}`);
  sk(['copy', '-q', ...extra, '--dest-tls-verify=false', '--digestfile', digestFile, ...(signBy ? ['--sign-by', signBy] : []), `oci:${layout}:v1`, registry.ref(`${repo}:v1`)]);
  const digest = readFileSync(digestFile, 'utf8').trim();
  digests.set(repo, digest);
  return digest;
}

const signatureDir = (repo: string, digest: string) => path.join(lookaside, `${repo}@${digest.replace(':', '=')}`);

const skopeoVerdict = (policy: unknown, image: string): Promise<Verdict> => skopeoVerdictOf({ policy, image, registriesD, scratchDir: tmp });
const layerpipeVerdict = (policy: unknown, image: string, conf?: string): Promise<Verdict> =>
  layerpipeVerdictOf(policy, image, { registriesDir: registriesD, ...(conf === undefined ? {} : { registriesConf: conf }) });

const signedBy = (keyPath: string) => ({ type: 'signedBy', keyType: 'GPGKeys', keyPath });
const only = (...reqs: unknown[]) => ({ default: reqs });

describe('what the policy judges: list or instance, short name or resolved name', { skip, timeout: 300_000 }, () => {
  before(async () => {
    assertRegistryTools();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-resolution-'));
    keys = createTestKeys(tmp);
    registry = await startRegistry();
    lookaside = path.join(tmp, 'lookaside');
    registriesD = path.join(tmp, 'registries.d');
    mkdirSync(registriesD);
    writeFileSync(path.join(registriesD, 'default.yaml'), `default-docker:\n  lookaside: file://${lookaside}\n  lookaside-staging: file://${lookaside}\n`);

    const list = path.join(tmp, 'layout-list');
    // The host's platform must be among the instances: skopeo copy and layerpipe both choose it.
    const here = process.arch === 'x64' ? 'amd64' : process.arch;
    const instances = ([here, here === 'amd64' ? 'arm64' : 'amd64'] as const).map((architecture) => ({
      manifest: writeImageBlobs(list, { layers: [makeLayer({ 'arch.txt': architecture })], os: 'linux', architecture }),
      platform: { os: 'linux', architecture },
    }));
    writeLayoutIndex(list, [{ manifest: writeIndexBlob(list, instances), refName: 'v1' }]);
    for (const repo of ['app/all', 'app/top-only', 'app/instances-only']) push(list, repo, keys.a.fingerprint, ['--all']);
    const listDigest = digests.get('app/all')!;
    const index = JSON.parse(sk(['inspect', '--raw', '--tls-verify=false', registry.ref('app/all:v1')])) as { manifests: { digest: string }[] };
    instanceDigests = index.manifests.map((m) => m.digest);
    for (const d of instanceDigests) rmSync(signatureDir('app/top-only', d), { recursive: true });
    rmSync(signatureDir('app/instances-only', listDigest), { recursive: true });

    const one = path.join(tmp, 'layout-one');
    writeOciImage(one, { layers: [makeLayer({ 'a.txt': 'short\n' })] }, 'v1');
    push(one, 'app/signed', keys.a.fingerprint);
    push(one, 'app/unsigned', undefined);
    registriesConf = path.join(tmp, 'registries.conf');
    writeFileSync(registriesConf, [
      'unqualified-search-registries = []',
      '[aliases]',
      `"short/signed" = "${registry.host}/app/signed"`,
      `"short/unsigned" = "${registry.host}/app/unsigned"`,
      '',
    ].join('\n'));
  });

  after(async () => {
    keys?.stopAgent();
    await registry?.stop();
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('the setup signed the list and each instance, then removed what each case lacks', () => {
    const listDigest = digests.get('app/all')!;
    assert.equal(instanceDigests.length, 2);
    for (const d of [listDigest, ...instanceDigests]) assert.ok(readFileSync(path.join(signatureDir('app/all', d), 'signature-1')).length > 100);
    assert.ok(readFileSync(path.join(signatureDir('app/top-only', listDigest), 'signature-1')).length > 100);
    assert.ok(readFileSync(path.join(signatureDir('app/instances-only', instanceDigests[0]!), 'signature-1')).length > 100);
  });

  const cases: readonly { repo: string; image?: () => string; ours: boolean; skopeoCopy: boolean; reason?: RegExp }[] = [
    { repo: 'app/all', ours: true, skopeoCopy: true },
    // The proxy judges the list's own signature; skopeo copy the chosen instance's.
    { repo: 'app/top-only', ours: true, skopeoCopy: false },
    { repo: 'app/instances-only', ours: false, skopeoCopy: true, reason: /A signature was required, but no signature exists/ },
    // An instance named by digest is the top level: its own signature decides, for both.
    { repo: 'app/instances-only', image: () => registry.ref(`app/instances-only@${instanceDigests[0]!}`), ours: true, skopeoCopy: true },
    { repo: 'app/top-only', image: () => registry.ref(`app/top-only@${instanceDigests[0]!}`), ours: false, skopeoCopy: false, reason: /no signature exists/ },
  ];
  for (const c of cases) {
    it(`multi-arch ${c.image === undefined ? c.repo : `${c.repo} by instance digest`}: proxy ${c.ours ? 'accepts' : 'refuses'}, skopeo copy ${c.skopeoCopy ? 'accepts' : 'refuses'}`, async () => {
      const image = c.image?.() ?? registry.ref(`${c.repo}:v1`);
      const policy = only(signedBy(keys.a.binary));
      const ours = await layerpipeVerdict(policy, image);
      const theirs = await skopeoVerdict(policy, image);
      assert.equal(ours.accepted, c.ours, `layerpipe: ${ours.reason ?? 'accepted'}`);
      assert.equal(theirs.accepted, c.skopeoCopy, `skopeo: ${theirs.reason ?? 'accepted'}`);
      if (c.reason !== undefined) assert.match(ours.reason ?? '', c.reason);
      // With another key, every case is refused by both.
      assert.equal((await layerpipeVerdict(only(signedBy(keys.b.binary)), image)).accepted, false);
    });
  }

  it('a short name is judged under the name its alias resolves to: scope and signed identity', async () => {
    const scoped = (scope: string) => ({ default: [{ type: 'reject' }], transports: { docker: { [scope]: [signedBy(keys.a.binary)] } } });
    // The resolved repository's scope applies, and the signature for HOST/app/signed:v1 matches it.
    assert.deepEqual(await layerpipeVerdict(scoped(`${registry.host}/app/signed`), 'docker://short/signed:v1', registriesConf), { accepted: true });
    // The short name's docker.io scope is not the image's: the default refuses.
    const unresolved = await layerpipeVerdict(scoped('docker.io/short/signed'), 'docker://short/signed:v1', registriesConf);
    assert.equal(unresolved.accepted, false);
    assert.match(unresolved.reason ?? '', new RegExp(`Running image docker://${registry.host}/app/signed:v1 is rejected by policy`));
    // Resolved to an unsigned image: refused by the resolved scope's requirement.
    const unsigned = await layerpipeVerdict(scoped(`${registry.host}/app/unsigned`), 'docker://short/unsigned:v1', registriesConf);
    assert.deepEqual(unsigned, { accepted: false, reason: 'A signature was required, but no signature exists' });
  });
});
