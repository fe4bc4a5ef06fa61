/**
 * sigstoreSigned against the real registry: images pushed with skopeo into a registry that
 * wants credentials, cosign-style ".sig" attachments made in the test (keys of every type, a
 * test Fulcio chain, a test Rekor key), registries.d enabling use-sigstore-attachments, and
 * each policy case decided by the real binary (`layerpipe experimental-image-proxy --policy P
 * --registries.d D`, OpenImage through the TypeScript client). skopeo cannot be the oracle
 * here: Debian builds it with sigstore disabled ("Debian-local change: sigstore disabled"), so
 * the expected reasons are containers/image's words as its source has them. Hostile
 * attachments are clear refusals and the proxy keeps serving.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../clients/typescript';
import { DigestMismatchError } from '../../protocol/errors';
import { openImageByName } from '../../server/image/open';
import { parsePolicy } from '../../server/policy/parse';
import { closeTestContext, neverAborted, testContext } from '../harness/context';
import { match, startFaultProxy } from '../harness/fault-proxy';
import { makeLayer, type ImageSpec } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { pushImage } from '../harness/registry-images';
import { pushSigstoreAttachment, type AttachmentLayer } from '../harness/registry-push';
import { assertRegistryTools, registrySuiteSkip } from '../harness/registry-tools';
import { sha256Of } from '../harness/registry-push';
import { ANNOTATIONS, EMAIL, ISSUER, keyPairs, payloadFor, publicKeyPem, rekorSet, signPayload, TestFulcio } from '../harness/sigstore-signing';
import type { KeyPair } from '../harness/x509-builder';

const skip = registrySuiteSkip();

let tmp: string;
let registry: RunningRegistry;
let registriesD: string;
const digests = new Map<string, string>();
const keys = { p256: keyPairs.p256(), p384: keyPairs.p384(), rsa: keyPairs.rsa(), ed25519: keyPairs.ed25519(), other: keyPairs.p256() };
const rekor = keyPairs.p256();
const now = new Date(Math.floor(Date.now() / 1000) * 1000);
const fulcio = new TestFulcio(now);
const otherFulcio = new TestFulcio(now);
const keyless = keyPairs.p256();
let counter = 0;
let sharedProxy: ImageProxy | undefined;
let p256Payload: Buffer;

const ref = (repo: string): string => registry.ref(`${repo}:v1`);
const identity = (repo: string): string => `${registry.host}/${repo}:v1`;

function file(name: string, content: string | Buffer): string {
  const p = path.join(tmp, `${++counter}-${name}`);
  writeFileSync(p, content);
  return p;
}

async function pushRepo(repo: string, n: number): Promise<string> {
  const spec: ImageSpec = { layers: [makeLayer({ 'n.txt': `${repo} ${n}\n` })] };
  const pushed = await pushImage(registry, `${repo}:v1`, spec);
  digests.set(repo, pushed.manifestDigest);
  return pushed.manifestDigest;
}

function keySigned(key: KeyPair, payload: Buffer, extra: Record<string, string> = {}): AttachmentLayer {
  return { payload, annotations: { [ANNOTATIONS.signature]: signPayload(key.privateKey, payload), ...extra } };
}

function rekorLogged(key: KeyPair, payload: Buffer): AttachmentLayer {
  const base64Signature = signPayload(key.privateKey, payload);
  const set = rekorSet(rekor.privateKey, { signerPem: publicKeyPem(key.publicKey), base64Signature, payload, integratedTime: Math.floor(now.getTime() / 1000) });
  return { payload, annotations: { [ANNOTATIONS.signature]: base64Signature, [ANNOTATIONS.bundle]: set } };
}

function fulcioSigned(payload: Buffer, ca: TestFulcio = fulcio, setKey: KeyPair = rekor): AttachmentLayer {
  const cert = ca.leaf(keyless.publicKey).pem;
  const base64Signature = signPayload(keyless.privateKey, payload);
  const set = rekorSet(setKey.privateKey, { signerPem: cert, base64Signature, payload, integratedTime: Math.floor(now.getTime() / 1000) + 30 });
  return { payload, annotations: { [ANNOTATIONS.signature]: base64Signature, [ANNOTATIONS.bundle]: set, [ANNOTATIONS.certificate]: cert, [ANNOTATIONS.chain]: ca.chainPem() } };
}

const MATCH = { type: 'matchRepoDigestOrExact' };
const byKey = (k: KeyPair, extra: Record<string, unknown> = {}) => ({ type: 'sigstoreSigned', keyPath: file('key.pub', publicKeyPem(k.publicKey)), signedIdentity: MATCH, ...extra });
const byFulcio = (o: { ca?: string; email?: string; issuer?: string } = {}) => ({
  type: 'sigstoreSigned',
  fulcio: { caData: Buffer.from(o.ca ?? fulcio.root.pem).toString('base64'), oidcIssuer: o.issuer ?? ISSUER, subjectEmail: o.email ?? EMAIL },
  rekorPublicKeyData: Buffer.from(publicKeyPem(rekor.publicKey)).toString('base64'),
  signedIdentity: MATCH,
});
const only = (...reqs: unknown[]) => ({ default: reqs });

interface Verdict {
  readonly accepted: boolean;
  readonly reason?: string;
}

/** The policy most cases share: one proxy serves them all (spawned once, as a client would keep it). */
const P256 = 'one P-256 key';

interface Case {
  readonly name: string;
  readonly policy: (() => unknown) | typeof P256;
  readonly repo: string;
  readonly accepted: boolean;
  readonly reason?: RegExp;
}

const CASES: readonly Case[] = [
  { name: 'P-256 key, right key', policy: P256, repo: 'app/p256', accepted: true },
  { name: 'P-256 key, keyData', policy: () => only({ type: 'sigstoreSigned', keyData: Buffer.from(publicKeyPem(keys.p256.publicKey)).toString('base64'), signedIdentity: MATCH }), repo: 'app/p256', accepted: true },
  { name: 'P-384 key', policy: () => only(byKey(keys.p384)), repo: 'app/p384', accepted: true },
  { name: 'RSA key', policy: () => only(byKey(keys.rsa)), repo: 'app/rsa', accepted: true },
  { name: 'Ed25519 key', policy: () => only(byKey(keys.ed25519)), repo: 'app/ed25519', accepted: true },
  { name: 'wrong key', policy: () => only(byKey(keys.other)), repo: 'app/p256', accepted: false, reason: /cryptographic signature verification failed/ },
  { name: 'several keys (keyPaths), one right', policy: () => only({ type: 'sigstoreSigned', keyPaths: [file('a.pub', publicKeyPem(keys.other.publicKey)), file('b.pub', publicKeyPem(keys.rsa.publicKey))], signedIdentity: MATCH }), repo: 'app/rsa', accepted: true },
  { name: 'wrong identity', policy: P256, repo: 'app/renamed', accepted: false, reason: /Signature for identity quay.io\/other\/name:v1 is not accepted/ },
  { name: 'wrong identity, exactRepository accepts it', policy: () => only(byKey(keys.p256, { signedIdentity: { type: 'exactRepository', dockerRepository: 'quay.io/other/name' } })), repo: 'app/renamed', accepted: true },
  { name: 'tampered payload digest', policy: P256, repo: 'app/tampered', accepted: false, reason: /Signature for digest sha256:[0-9a-f]+ does not match/ },
  { name: 'missing attachment', policy: P256, repo: 'app/unsigned', accepted: false, reason: /^A signature was required, but no signature exists$/ },
  { name: 'two signatures, the second accepted', policy: P256, repo: 'app/two', accepted: true },
  { name: 'every requirement must pass', policy: () => only(byKey(keys.p256), byKey(keys.rsa)), repo: 'app/p256', accepted: false, reason: /cryptographic signature verification failed/ },
  { name: 'key with Rekor SET', policy: () => only(byKey(keys.p256, { rekorPublicKeyPath: file('rekor.pub', publicKeyPem(rekor.publicKey)) })), repo: 'app/rekor', accepted: true },
  { name: 'key with Rekor SET, signature without one', policy: () => only(byKey(keys.p256, { rekorPublicKeyPath: file('rekor.pub', publicKeyPem(rekor.publicKey)) })), repo: 'app/p256', accepted: false, reason: /missing dev.sigstore.cosign\/bundle annotation/ },
  { name: 'key with Rekor SET by another Rekor key', policy: () => only(byKey(keys.p256, { rekorPublicKeyPath: file('rekor.pub', publicKeyPem(keys.other.publicKey)) })), repo: 'app/rekor', accepted: false, reason: /cryptographic signature verification of Rekor SET failed/ },
  { name: 'Fulcio: accepted', policy: () => only(byFulcio()), repo: 'app/fulcio', accepted: true },
  { name: 'Fulcio: wrong CA', policy: () => only(byFulcio({ ca: otherFulcio.root.pem })), repo: 'app/fulcio', accepted: false, reason: /certificate signed by unknown authority/ },
  { name: 'Fulcio: wrong email', policy: () => only(byFulcio({ email: 'else@example.com' })), repo: 'app/fulcio', accepted: false, reason: /Required email "else@example.com" not found/ },
  { name: 'Fulcio: wrong issuer', policy: () => only(byFulcio({ issuer: 'https://else.example.com' })), repo: 'app/fulcio', accepted: false, reason: /Unexpected Fulcio OIDC issuer/ },
  { name: 'Fulcio: SET by another key', policy: () => only(byFulcio()), repo: 'app/fulcio-badset', accepted: false, reason: /cryptographic signature verification of Rekor SET failed/ },
  { name: 'hostile: garbage base64 signature', policy: P256, repo: 'bad/garbage', accepted: false, reason: /^base64 decoding/ },
  { name: 'hostile: extra critical key', policy: P256, repo: 'bad/extra-critical', accepted: false, reason: /Unknown key "extra"/ },
  { name: 'hostile: wrong layer media type', policy: P256, repo: 'bad/media-type', accepted: false, reason: /no signature exists \(0 non-sigstore signatures, 1 sigstore non-signature attachments\)/ },
  { name: 'hostile: declared larger than 4 MiB', policy: P256, repo: 'bad/huge', accepted: false, reason: /a signature larger than 4194304 bytes/ },
  { name: 'hostile: a blob larger than its descriptor says', policy: P256, repo: 'bad/liar', accepted: false, reason: /more than the 100 bytes its descriptor says/ },
  { name: 'hostile: too many signatures', policy: P256, repo: 'bad/many', accepted: false, reason: /129 layers, more than 128 signatures/ },
  { name: 'hostile: attachment is not an OCI manifest', policy: P256, repo: 'bad/manifest-type', accepted: false, reason: /unexpected MIME type for sigstore attachment manifest .*application\/vnd.docker.distribution.manifest.v2\+json/ },
];

function policyFile(policy: unknown): string {
  return file('policy.json', JSON.stringify(policy));
}

async function spawnProxy(policy: unknown): Promise<ImageProxy> {
  const proxy = await ImageProxy.spawn({ args: ['--policy', policyFile(policy), '--registries.d', registriesD, '--tls-verify=false', '--creds', registry.creds!] });
  await proxy.initialize();
  return proxy;
}

async function withProxy<T>(policy: unknown, fn: (proxy: ImageProxy) => Promise<T>): Promise<T> {
  const proxy = await spawnProxy(policy);
  try {
    return await fn(proxy);
  } finally {
    assert.equal(await proxy.shutdown(), 0, proxy.stderr);
  }
}

/** OpenImage through the binary; accepted images are read (manifest digest) and closed. */
async function layerpipeVerdict(proxy: ImageProxy, image: string, repo: string): Promise<Verdict> {
  let id: number;
  try {
    id = await proxy.openImage(image);
  } catch (err) {
    return { accepted: false, reason: (err as Error).message };
  }
  const { digest } = await proxy.getManifest(id);
  assert.equal(digest, digests.get(repo));
  await proxy.closeImage(id);
  return { accepted: true };
}

describe('sigstoreSigned through the binary, with attachments in the registry', { skip, timeout: 600_000 }, () => {
  before(async () => {
    assertRegistryTools();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-sigstore-'));
    registry = await startRegistry({ auth: 'htpasswd' });
    registriesD = path.join(tmp, 'registries.d');
    mkdirSync(registriesD);
    writeFileSync(path.join(registriesD, 'sigstore.yaml'), `docker:\n  ${registry.host}:\n    use-sigstore-attachments: true\n`);

    const repos = ['app/p256', 'app/p384', 'app/rsa', 'app/ed25519', 'app/renamed', 'app/tampered', 'app/unsigned', 'app/two', 'app/rekor', 'app/fulcio', 'app/fulcio-badset',
      'bad/garbage', 'bad/extra-critical', 'bad/media-type', 'bad/huge', 'bad/liar', 'bad/many', 'bad/manifest-type'];
    for (const [i, repo] of repos.entries()) await pushRepo(repo, i);
    const own = (repo: string) => payloadFor(digests.get(repo)!, identity(repo));
    const attach = (repo: string, layers: AttachmentLayer[], mediaType?: string) => pushSigstoreAttachment(registry, repo, digests.get(repo)!, layers, mediaType);
    p256Payload = own('app/p256');
    await attach('app/p256', [keySigned(keys.p256, p256Payload)]);
    await attach('app/p384', [keySigned(keys.p384, own('app/p384'))]);
    await attach('app/rsa', [keySigned(keys.rsa, own('app/rsa'))]);
    await attach('app/ed25519', [keySigned(keys.ed25519, own('app/ed25519'))]);
    await attach('app/renamed', [keySigned(keys.p256, payloadFor(digests.get('app/renamed')!, 'quay.io/other/name:v1'))]);
    await attach('app/tampered', [keySigned(keys.p256, payloadFor(digests.get('app/p256')!, identity('app/tampered')))]);
    await attach('app/two', [keySigned(keys.other, own('app/two')), keySigned(keys.p256, own('app/two'))]);
    await attach('app/rekor', [rekorLogged(keys.p256, own('app/rekor'))]);
    await attach('app/fulcio', [fulcioSigned(own('app/fulcio'))]);
    await attach('app/fulcio-badset', [fulcioSigned(own('app/fulcio-badset'), fulcio, keys.other)]);
    await attach('bad/garbage', [{ payload: own('bad/garbage'), annotations: { [ANNOTATIONS.signature]: '!!not base64!!' } }]);
    await attach('bad/extra-critical', [keySigned(keys.p256, payloadFor(digests.get('bad/extra-critical')!, identity('bad/extra-critical'), { critical: { extra: 'x' } }))]);
    await attach('bad/media-type', [{ ...keySigned(keys.p256, own('bad/media-type')), mediaType: 'application/vnd.in-toto+json' }]);
    await attach('bad/huge', [{ ...keySigned(keys.p256, own('bad/huge')), claimedSize: 5 * 1024 * 1024 }]);
    const big = Buffer.alloc(5 * 1024 * 1024, 0x20);
    await attach('bad/liar', [{ payload: big, annotations: { [ANNOTATIONS.signature]: 'AAAA' }, claimedSize: 100 }]);
    await attach('bad/many', Array.from({ length: 129 }, () => keySigned(keys.other, own('bad/many'))));
    await attach('bad/manifest-type', [keySigned(keys.p256, own('bad/manifest-type'))], 'application/vnd.docker.distribution.manifest.v2+json');
    sharedProxy = await spawnProxy(only(byKey(keys.p256)));
  });

  after(async () => {
    if (sharedProxy !== undefined) assert.equal(await sharedProxy.shutdown(), 0, sharedProxy.stderr);
    await registry?.stop();
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const policy = c.policy;
      const ours = policy === P256
        ? await layerpipeVerdict(sharedProxy!, ref(c.repo), c.repo)
        : await withProxy(policy(), (proxy) => layerpipeVerdict(proxy, ref(c.repo), c.repo));
      assert.equal(ours.accepted, c.accepted, `layerpipe: ${ours.reason ?? 'accepted'}`);
      if (c.reason !== undefined) assert.match(ours.reason ?? '', c.reason);
    });
  }

  it('the shared proxy keeps serving after hostile attachments, and a refused image serves nothing', async () => {
    const proxy = sharedProxy!;
    for (const repo of ['bad/many', 'bad/liar', 'bad/garbage', 'bad/manifest-type', 'app/unsigned']) {
      await assert.rejects(proxy.openImage(ref(repo)));
      await assert.rejects(proxy.openImageOptional(ref(repo)));
    }
    const id = await proxy.openImage(ref('app/p256'));
    assert.equal((await proxy.getManifest(id)).digest, digests.get('app/p256'));
    await proxy.closeImage(id);
  });

  it('attachment payloads are verified as they arrive: a corrupted one is a digest mismatch, a cut one is resumed', async () => {
    const faults = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    const dir = path.join(tmp, 'registries-all.d');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'all.yaml'), 'default-docker:\n  use-sigstore-attachments: true\n');
    const [username, password] = registry.creds!.split(':') as [string, string];
    const policy = parsePolicy(JSON.stringify(only(byKey(keys.p256, { signedIdentity: { type: 'exactRepository', dockerRepository: `${registry.host}/app/p256` } }))));
    const open = async (): Promise<void> => {
      const ctx = testContext({ policy, registry: { registriesDir: dir, tlsVerify: false, credentials: { username, password } } });
      try {
        await (await openImageByName(`docker://${faults.host}/app/p256:v1`, ctx, neverAborted())).close();
      } finally {
        await closeTestContext(ctx);
      }
    };
    try {
      const payloadGet = match.blobGet(sha256Of(p256Payload));
      await open();
      assert.equal(faults.seen(payloadGet).length, 1);
      faults.addRule({ match: payloadGet, action: { kind: 'corrupt', offset: 20 }, times: Infinity });
      await assert.rejects(open(), (err: Error) => err instanceof DigestMismatchError && /sigstore attachment 1\/1/.test(err.message));
      faults.clearRules();
      faults.addRule({ match: payloadGet, action: { kind: 'cut', afterBytes: 30 } });
      await open();
      // Every request carried the registry's credentials, and went to the registry only.
      assert.ok(faults.requests.filter((r) => r.path !== '/v2/').every((r) => typeof r.headers.authorization === 'string'));
    } finally {
      await faults.close();
    }
  });

  it('without use-sigstore-attachments, no attachment is read', async () => {
    const saved = registriesD;
    registriesD = path.join(tmp, 'registries-off.d');
    mkdirSync(registriesD);
    try {
      const ours = await withProxy(only(byKey(keys.p256)), (proxy) => layerpipeVerdict(proxy, ref('app/p256'), 'app/p256'));
      assert.deepEqual(ours, { accepted: false, reason: ours.reason });
      assert.match(ours.reason ?? '', /A signature was required, but no signature exists$/);
    } finally {
      registriesD = saved;
    }
  });
});
