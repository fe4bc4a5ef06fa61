/**
 * Signature policy against the real thing: GnuPG keys, images in a real registry signed by
 * `skopeo copy --sign-by` into a file:// lookaside (containers-registries.d(5)), dir: copies
 * carrying their signature-N files, and for each policy case layerpipe's verdict (opening the
 * image in-process) must equal `skopeo --policy P --registries.d D copy IMAGE dir:OUT`'s, with
 * the same reason where containers/image words it the same way. Then the real binary with the
 * TypeScript client: OpenImage refused, nothing served.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../clients/typescript';
import { layerpipeVerdict as layerpipeVerdictOf, skopeoVerdict as skopeoVerdictOf, type Verdict } from '../harness/policy-verdicts';
import { makeLayer, writeImageBlobs, writeIndexBlob, writeLayoutIndex, writeOciImage } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { assertRegistryTools, findProgram, IN_CI, registrySuiteSkip } from '../harness/registry-tools';
import { createTestKeys, standaloneSign, type TestKeys } from '../harness/signing';

const skip = registrySuiteSkip() || (findProgram('gpg') === undefined && !IN_CI ? 'gpg is missing: apt-get install gnupg' : false);
const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'layerpipe');

let tmp: string;
let keys: TestKeys;
let registry: RunningRegistry;
let registriesD: string;
let lookaside: string;
/** Manifest digest of each pushed repository ("app/signed" -> sha256:…). */
const digests = new Map<string, string>();
let counter = 0;

/** skopeo as the setup runs it: signing keys in env, the test registries.d, no policy. */
function sk(args: readonly string[]): string {
  return execFileSync('skopeo', ['--insecure-policy', '--registries.d', registriesD, ...args], { env: keys.env, stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
}

function push(layout: string, repo: string, signBy?: string, extra: readonly string[] = []): string {
  const digestFile = path.join(tmp, `digest-${++counter}`);
  sk(['copy', '-q', ...extra, '--dest-tls-verify=false', '--digestfile', digestFile, ...(signBy ? ['--sign-by', signBy] : []), `oci:${layout}:v1`, `${registry.ref(`${repo}:v1`)}`]);
  const digest = readFileSync(digestFile, 'utf8').trim();
  digests.set(repo, digest);
  return digest;
}

function signatureDir(repo: string): string {
  return path.join(lookaside, `${repo}@${digests.get(repo)!.replace(':', '=')}`);
}

/** Puts a signature claiming `identity` for `repo`'s manifest into the lookaside. */
function signAs(repo: string, identity: string, fingerprint: string): void {
  const manifest = path.join(tmp, `manifest-${++counter}.json`);
  writeFileSync(manifest, sk(['inspect', '--raw', '--tls-verify=false', registry.ref(`${repo}:v1`)]));
  mkdirSync(signatureDir(repo), { recursive: true });
  standaloneSign(keys, manifest, identity, fingerprint, path.join(signatureDir(repo), 'signature-1'));
}

function policyFile(policy: unknown): string {
  const file = path.join(tmp, `policy-${++counter}.json`);
  writeFileSync(file, JSON.stringify(policy));
  return file;
}

/** skopeo's verdict, its reason cut to what follows "Source image rejected: " (as layerpipe words it). */
async function skopeoVerdict(policy: unknown, image: string): Promise<Verdict> {
  const verdict = await skopeoVerdictOf({ policy, image, registriesD, scratchDir: tmp });
  if (verdict.accepted) return verdict;
  const m = /Source image rejected: (.*)"$/m.exec(verdict.reason ?? '');
  if (m === null) throw new Error(`skopeo failed for another reason: ${verdict.reason}`);
  return { accepted: false, reason: m[1]!.replace(/\\"/g, '"') };
}

const layerpipeVerdict = (policy: unknown, image: string): Promise<Verdict> => layerpipeVerdictOf(policy, image, { registriesDir: registriesD });

/** The part of a reason both say the same way: up to the first ": " (gpgme's dump of a signature differs, the words before do not). */
const gist = (reason: string | undefined): string | undefined => reason?.split(': ')[0];

const signedBy = (keyPath: string, signedIdentity?: unknown) =>
  ({ type: 'signedBy', keyType: 'GPGKeys', keyPath, ...(signedIdentity === undefined ? {} : { signedIdentity }) });
const only = (...reqs: unknown[]) => ({ default: reqs });

interface Case {
  readonly name: string;
  readonly policy: () => unknown;
  readonly image: () => string;
  readonly accepted: boolean;
  /** A piece of the reason layerpipe must give. */
  readonly reason?: string;
}

const docker = (repo: string) => () => registry.ref(`${repo}:v1`);
const dir = (name: string) => () => `dir:${path.join(tmp, 'dirs', name)}`;
const host = () => registry.host;

const CASES: readonly Case[] = [
  { name: 'signed, signedBy its key', policy: () => only(signedBy(keys.a.binary)), image: docker('app/signed'), accepted: true },
  { name: 'signed, armored keyring', policy: () => only(signedBy(keys.a.armored)), image: docker('app/signed'), accepted: true },
  { name: 'signed, keyData', policy: () => only({ type: 'signedBy', keyType: 'GPGKeys', keyData: readFileSync(keys.a.binary).toString('base64') }), image: docker('app/signed'), accepted: true },
  { name: 'signed, several keys (keyPaths)', policy: () => only({ type: 'signedBy', keyType: 'GPGKeys', keyPaths: [keys.b.binary, keys.a.armored] }), image: docker('app/signed'), accepted: true },
  { name: 'signed, wrong key', policy: () => only(signedBy(keys.b.binary)), image: docker('app/signed'), accepted: false, reason: 'Invalid GPG signature' },
  { name: 'unsigned', policy: () => only(signedBy(keys.a.binary)), image: docker('app/unsigned'), accepted: false, reason: 'A signature was required, but no signature exists' },
  { name: 'unsigned, insecureAcceptAnything', policy: () => only({ type: 'insecureAcceptAnything' }), image: docker('app/unsigned'), accepted: true },
  { name: 'reject', policy: () => only({ type: 'reject' }), image: docker('app/signed'), accepted: false, reason: 'is rejected by policy.' },
  { name: 'every requirement must pass', policy: () => only(signedBy(keys.a.binary), { type: 'reject' }), image: docker('app/signed'), accepted: false, reason: 'is rejected by policy.' },
  { name: 'two signatures, the second by the accepted key', policy: () => only(signedBy(keys.a.binary)), image: docker('app/both'), accepted: true },
  { name: 'two signatures, none accepted', policy: () => only(signedBy(keys.b.binary)), image: docker('app/both'), accepted: false, reason: 'None of the signatures were accepted' },
  { name: 'signature of another manifest', policy: () => only(signedBy(keys.a.binary)), image: docker('app/tampered'), accepted: false, reason: 'does not match' },
  { name: 'garbage signature', policy: () => only(signedBy(keys.a.binary)), image: docker('app/garbage'), accepted: false },
  { name: 'signed by a subkey', policy: () => only(signedBy(keys.c.binary)), image: docker('app/sub'), accepted: false, reason: 'Signature by key' },
  { name: 'matchExact', policy: () => only(signedBy(keys.a.binary, { type: 'matchExact' })), image: docker('app/signed'), accepted: true },
  { name: 'matchRepository', policy: () => only(signedBy(keys.a.binary, { type: 'matchRepository' })), image: docker('app/signed'), accepted: true },
  { name: 'exactReference, same', policy: () => only(signedBy(keys.a.binary, { type: 'exactReference', dockerReference: `${host()}/app/signed:v1` })), image: docker('app/signed'), accepted: true },
  { name: 'exactReference, another tag', policy: () => only(signedBy(keys.a.binary, { type: 'exactReference', dockerReference: `${host()}/app/signed:v2` })), image: docker('app/signed'), accepted: false, reason: 'is not accepted' },
  { name: 'exactRepository, same', policy: () => only(signedBy(keys.a.binary, { type: 'exactRepository', dockerRepository: `${host()}/app/signed` })), image: docker('app/signed'), accepted: true },
  { name: 'exactRepository, another', policy: () => only(signedBy(keys.a.binary, { type: 'exactRepository', dockerRepository: `${host()}/app/nope` })), image: docker('app/signed'), accepted: false, reason: 'Signature for identity' },
  { name: 'signed under another name, default identity', policy: () => only(signedBy(keys.a.binary)), image: docker('app/renamed'), accepted: false, reason: 'Signature for identity quay.io/other/name:v1 is not accepted' },
  { name: 'signed under another name, exactRepository', policy: () => only(signedBy(keys.a.binary, { type: 'exactRepository', dockerRepository: 'quay.io/other/name' })), image: docker('app/renamed'), accepted: true },
  { name: 'mirror, remapIdentity', policy: () => only(signedBy(keys.a.binary, { type: 'remapIdentity', prefix: `${host()}/mirror`, signedPrefix: 'quay.io/upstream' })), image: docker('mirror/app'), accepted: true },
  { name: 'mirror, remapIdentity of another prefix', policy: () => only(signedBy(keys.a.binary, { type: 'remapIdentity', prefix: `${host()}/elsewhere`, signedPrefix: 'quay.io/upstream' })), image: docker('mirror/app'), accepted: false, reason: 'Signature for identity' },
  { name: 'by digest, matchRepoDigestOrExact', policy: () => only(signedBy(keys.a.binary)), image: () => registry.ref(`app/signed@${digests.get('app/signed')!}`), accepted: true },
  { name: 'by digest, matchExact', policy: () => only(signedBy(keys.a.binary, { type: 'matchExact' })), image: () => registry.ref(`app/signed@${digests.get('app/signed')!}`), accepted: false },
  // A list: the signature names the list's own digest, and the top-level manifest is what is checked.
  { name: 'multi-arch list signed at the top level', policy: () => only(signedBy(keys.a.binary)), image: docker('app/list'), accepted: true },
  { name: 'multi-arch list, wrong key', policy: () => only(signedBy(keys.b.binary)), image: docker('app/list'), accepted: false, reason: 'Invalid GPG signature' },
  { name: 'signedBaseLayer', policy: () => only({ type: 'signedBaseLayer', baseLayerIdentity: { type: 'matchRepository' } }), image: docker('app/signed'), accepted: false, reason: 'signedBaseLayer not implemented yet!' },
  {
    name: 'scoped: the repository scope applies, "" rejects the rest',
    policy: () => ({ default: [{ type: 'insecureAcceptAnything' }], transports: { docker: { [`${host()}/app/signed`]: [signedBy(keys.a.binary)], '': [{ type: 'reject' }] } } }),
    image: docker('app/signed'), accepted: true,
  },
  {
    name: 'scoped: another repository falls to the transport default',
    policy: () => ({ default: [{ type: 'insecureAcceptAnything' }], transports: { docker: { [`${host()}/app/signed`]: [signedBy(keys.a.binary)], '': [{ type: 'reject' }] } } }),
    image: docker('app/unsigned'), accepted: false, reason: 'is rejected by policy.',
  },
  { name: 'dir: signed copy, exactRepository', policy: () => only(signedBy(keys.a.binary, { type: 'exactRepository', dockerRepository: `${host()}/app/signed` })), image: dir('signed'), accepted: true },
  { name: 'dir: signed copy, default identity (dir: has no docker reference)', policy: () => only(signedBy(keys.a.binary)), image: dir('signed'), accepted: false, reason: 'Signature for identity' },
  { name: 'dir: signed copy, wrong key', policy: () => only(signedBy(keys.b.binary, { type: 'matchRepository' })), image: dir('signed'), accepted: false, reason: 'Invalid GPG signature' },
  { name: 'dir: manifest changed after signing', policy: () => only(signedBy(keys.a.binary, { type: 'exactRepository', dockerRepository: `${host()}/app/signed` })), image: dir('tampered'), accepted: false, reason: 'does not match' },
  { name: 'dir: unsigned', policy: () => only(signedBy(keys.a.binary, { type: 'matchRepository' })), image: dir('unsigned'), accepted: false, reason: 'A signature was required' },
];

describe('signature policy, compared with skopeo', { skip, timeout: 300_000 }, () => {
  before(async () => {
    assertRegistryTools();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-signing-'));
    keys = createTestKeys(tmp);
    registry = await startRegistry();
    lookaside = path.join(tmp, 'lookaside');
    registriesD = path.join(tmp, 'registries.d');
    mkdirSync(registriesD);
    writeFileSync(path.join(registriesD, 'default.yaml'), `default-docker:\n  lookaside: file://${lookaside}\n  lookaside-staging: file://${lookaside}\n`);

    const one = path.join(tmp, 'layout-one');
    const two = path.join(tmp, 'layout-two');
    writeOciImage(one, { layers: [makeLayer({ 'a.txt': 'signed\n' })] }, 'v1');
    writeOciImage(two, { layers: [makeLayer({ 'b.txt': 'other\n' })] }, 'v1');
    push(one, 'app/signed', keys.a.fingerprint);
    push(one, 'app/unsigned');
    push(two, 'app/other', keys.b.fingerprint);
    push(one, 'app/sub', keys.c.fingerprint);
    // Two signatures: b's, copied along with the image, then a's.
    sk(['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', '--sign-by', keys.a.fingerprint, registry.ref('app/other:v1'), registry.ref('app/both:v1')]);
    digests.set('app/both', digests.get('app/other')!);
    push(two, 'app/tampered');
    mkdirSync(signatureDir('app/tampered'), { recursive: true });
    cpSync(path.join(signatureDir('app/signed'), 'signature-1'), path.join(signatureDir('app/tampered'), 'signature-1'));
    push(one, 'app/garbage');
    mkdirSync(signatureDir('app/garbage'), { recursive: true });
    writeFileSync(path.join(signatureDir('app/garbage'), 'signature-1'), Buffer.from('\x00\xffnot a signature at all'));
    push(one, 'app/renamed');
    signAs('app/renamed', 'quay.io/other/name:v1', keys.a.fingerprint);
    const list = path.join(tmp, 'layout-list');
    const instances = (['amd64', 'arm64'] as const).map((architecture) => ({
      manifest: writeImageBlobs(list, { layers: [makeLayer({ 'arch.txt': architecture })], os: 'linux', architecture }),
      platform: { os: 'linux', architecture },
    }));
    writeLayoutIndex(list, [{ manifest: writeIndexBlob(list, instances), refName: 'v1' }]);
    push(list, 'app/list', keys.a.fingerprint, ['--all']);
    push(one, 'mirror/app');
    signAs('mirror/app', 'quay.io/upstream/app:v1', keys.a.fingerprint);

    const dirs = path.join(tmp, 'dirs');
    mkdirSync(dirs);
    sk(['copy', '-q', '--src-tls-verify=false', registry.ref('app/signed:v1'), `dir:${dirs}/signed`]);
    sk(['copy', '-q', '--src-tls-verify=false', registry.ref('app/unsigned:v1'), `dir:${dirs}/unsigned`]);
    cpSync(path.join(dirs, 'signed'), path.join(dirs, 'tampered'), { recursive: true });
    const m = path.join(dirs, 'tampered', 'manifest.json');
    writeFileSync(m, `${readFileSync(m, 'utf8')}\n`);
  });

  after(async () => {
    keys?.stopAgent();
    await registry?.stop();
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('the setup signed what it should (sanity)', () => {
    assert.ok(readFileSync(path.join(signatureDir('app/signed'), 'signature-1')).length > 100);
    assert.ok(readFileSync(path.join(signatureDir('app/both'), 'signature-2')).length > 100);
    assert.ok(readFileSync(path.join(tmp, 'dirs', 'signed', 'signature-1')).length > 100);
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const policy = c.policy();
      const image = c.image();
      const theirs = await skopeoVerdict(policy, image);
      const ours = await layerpipeVerdict(policy, image);
      assert.equal(theirs.accepted, c.accepted, `skopeo: ${theirs.reason ?? 'accepted'}`);
      assert.equal(ours.accepted, c.accepted, `layerpipe: ${ours.reason ?? 'accepted'}`);
      if (c.reason !== undefined) assert.ok(ours.reason?.includes(c.reason), `layerpipe: ${ours.reason}`);
      // Garbage is refused by skopeo before verification ("parsing signature"); the verdict is what must agree.
      if (!c.accepted && c.name !== 'garbage signature') assert.equal(gist(ours.reason), gist(theirs.reason), `layerpipe: ${ours.reason}\nskopeo: ${theirs.reason}`);
    });
  }

  it('an http:// lookaside named by a docker: namespace entry (with the legacy "sigstore" key)', async () => {
    // Serves the lookaside directory over HTTP; anything else is 404.
    const server = http.createServer((req, res) => {
      const file = path.join(lookaside, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
      try {
        const body = readFileSync(file);
        res.writeHead(200).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const saved = registriesD;
    try {
      registriesD = path.join(tmp, 'registries-http.d');
      mkdirSync(registriesD, { recursive: true });
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      writeFileSync(path.join(registriesD, 'ns.yaml'), `docker:\n  ${registry.host}/app:\n    sigstore: ${url}\n`);
      for (const [repo, accepted] of [['app/signed', true], ['app/tampered', false], ['app/unsigned', false]] as const) {
        const policy = only(signedBy(keys.a.binary));
        const theirs = await skopeoVerdict(policy, registry.ref(`${repo}:v1`));
        const ours = await layerpipeVerdict(policy, registry.ref(`${repo}:v1`));
        assert.equal(theirs.accepted, accepted, `skopeo ${repo}: ${theirs.reason}`);
        assert.equal(ours.accepted, accepted, `layerpipe ${repo}: ${ours.reason}`);
        assert.equal(gist(ours.reason), gist(theirs.reason));
      }
      // The namespace entry covers app/ only: mirror/app has no lookaside, so no signature.
      assert.equal((await layerpipeVerdict(only(signedBy(keys.a.binary)), registry.ref('mirror/app:v1'))).reason, 'A signature was required, but no signature exists');
    } finally {
      registriesD = saved;
      server.closeAllConnections();
      server.close();
    }
  });

  it('the real binary: OpenImage and OpenImageOptional refused, a signed image served', async () => {
    const policy = policyFile(only(signedBy(keys.a.binary)));
    const proxy = await ImageProxy.spawn({ args: ['--policy', policy, '--registries.d', registriesD, '--tls-verify=false'] });
    try {
      await proxy.initialize();
      await assert.rejects(proxy.openImage(registry.ref('app/unsigned:v1')), /A signature was required, but no signature exists/);
      await assert.rejects(proxy.openImageOptional(registry.ref('app/other:v1')), /Invalid GPG signature/);
      const id = await proxy.openImage(registry.ref('app/signed:v1'));
      const { digest } = await proxy.getManifest(id);
      assert.equal(digest, digests.get('app/signed'));
      await proxy.closeImage(id);
    } finally {
      assert.equal(await proxy.shutdown(), 0);
    }
  });

  it('layerpipe inspect refuses what the policy refuses, reporting why', () => {
    const policy = policyFile(only(signedBy(keys.a.binary)));
    const args = ['inspect', '--signatures', '--policy', policy, '--registries.d', registriesD, '--tls-verify=false'];
    const refused = spawnSync(BIN, [...args, registry.ref('app/unsigned:v1')], { encoding: 'utf8' });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /A signature was required, but no signature exists/);
    const report = JSON.parse(refused.stdout) as { Layers?: unknown; Signatures: unknown[]; Policy: unknown };
    assert.equal(report.Layers, undefined, 'a refused image is not resolved');
    assert.deepEqual(report.Signatures, []);
    assert.deepEqual(report.Policy, { verdict: 'rejected', scope: 'default', reason: 'A signature was required, but no signature exists' });
    const served = spawnSync(BIN, [...args, registry.ref('app/signed:v1')], { encoding: 'utf8' });
    assert.equal(served.status, 0, served.stderr);
    assert.equal((JSON.parse(served.stdout) as { Digest: string }).Digest, digests.get('app/signed'));
  });
});
