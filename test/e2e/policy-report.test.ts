/**
 * The signature report over the real wire and the real command: one registry image signed by
 * `skopeo copy --sign-by` (GnuPG, lookaside) and by two sigstore signatures in a ".sig"
 * attachment (a P-256 key; a test Fulcio certificate with a Rekor SET). Protocol 1.0's
 * GetSignatures through `layerpipe experimental-image-proxy --policy P --registries.d D`
 * lists each signature with its claims and whether the policy's scope accepts it, in
 * agreement with OpenImage's verdict; `layerpipe inspect` shows the same list and the verdict,
 * also for an image the policy refuses (then exit 1, nothing resolved).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RpcErrorCodes, type SignatureInfo } from '../../protocol/jsonrpc';
import { RpcTestClient, LAYERPIPE } from '../harness/jsonrpc-client';
import { makeLayer, writeOciImage } from '../harness/oci-builder';
import { assertRegistryTools, findProgram, IN_CI, registrySuiteSkip } from '../harness/registry-tools';
import { makeSignedRegistryImage, type SignedRegistryImage } from '../harness/signed-registry-image';
import { EMAIL } from '../harness/sigstore-signing';

const skip = registrySuiteSkip() || (findProgram('gpg') === undefined && !IN_CI ? 'gpg is missing: apt-get install gnupg' : false);

let tmp: string;
let fx: SignedRegistryImage;
let counter = 0;
/** Key a's key ID: the low 64 bits of its fingerprint. */
const keyIdA = (): string => fx.keys.a.fingerprint.slice(-16);

function policyFile(policy: unknown): string {
  const file = path.join(tmp, `policy-${++counter}.json`);
  writeFileSync(file, JSON.stringify(policy));
  return file;
}
const only = (...reqs: unknown[]) => ({ default: reqs });

/** Runs `fn` with a 1.0 connection to a proxy under `policy`, reading signatures from `registriesD`. */
async function withRpc<T>(policy: unknown, registriesD: string, fn: (client: RpcTestClient) => Promise<T>): Promise<T> {
  const client = RpcTestClient.spawnSeqpacket(['--policy', policyFile(policy), '--registries.d', registriesD, '--tls-verify=false']);
  try {
    // A policy the proxy refuses at start-up ends it: fail then, not at the timeout.
    await Promise.race([client.initialize(), client.exited.then((code) => Promise.reject(new Error(`proxy exited (${code}): ${client.stderrText}`)))]);
    return await fn(client);
  } finally {
    await client.request('Shutdown').catch(() => undefined);
    client.close();
    assert.equal(await client.exited, 0, client.stderrText);
  }
}

async function signaturesOf(client: RpcTestClient, reference: string): Promise<SignatureInfo[]> {
  const { image } = await client.request<{ image: number }>('OpenImage', { reference });
  const { signatures } = await client.request<{ signatures: SignatureInfo[] }>('GetSignatures', { image });
  await client.request('CloseImage', { image });
  return signatures;
}

/** The three signatures by kind: GnuPG, sigstore key, sigstore Fulcio. */
function byKind(sigs: readonly SignatureInfo[]): { gpg: SignatureInfo; key: SignatureInfo; fulcio: SignatureInfo } {
  assert.equal(sigs.length, 3, JSON.stringify(sigs));
  const gpg = sigs.find((s) => s.format === 'simple-signing');
  const fulcio = sigs.find((s) => s.format === 'sigstore' && s.certificateSubject !== undefined);
  const key = sigs.find((s) => s.format === 'sigstore' && s.certificateSubject === undefined);
  assert.ok(gpg && key && fulcio, JSON.stringify(sigs));
  return { gpg, key, fulcio };
}

function inspect(policy: unknown, registriesD: string, image: string): { status: number | null; stderr: string; report: Record<string, unknown> | undefined } {
  const r = spawnSync(LAYERPIPE, ['inspect', '--signatures', '--policy', policyFile(policy), '--registries.d', registriesD, '--tls-verify=false', image], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, report: r.stdout === '' ? undefined : (JSON.parse(r.stdout) as Record<string, unknown>) };
}

describe('signature report: GetSignatures and inspect', { skip, timeout: 180_000 }, () => {
  before(async () => {
    assertRegistryTools();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-report-'));
    fx = await makeSignedRegistryImage(tmp);
  });

  after(async () => {
    await fx?.stop();
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('signedBy: the GnuPG signature is verified, with its signer and identity; sigstore ones are not checked', async () => {
    const sigs = await withRpc(only(fx.requirement.signedBy), fx.registriesD.both, (c) => signaturesOf(c, fx.ref));
    const { gpg, key, fulcio } = byKind(sigs);
    assert.deepEqual(gpg, { format: 'simple-signing', identity: fx.identity, keyId: keyIdA(), verified: true });
    assert.equal(key.verified, false);
    assert.match(key.reason ?? '', /^not checked: the policy for this image \(scope default\) has no sigstoreSigned requirement$/);
    assert.equal(key.identity, fx.identity);
    assert.equal(fulcio.certificateSubject, EMAIL);
    assert.equal(fulcio.verified, false);
  });

  it('every kind required: each signature verified by the requirement of its kind', async () => {
    const policy = only(fx.requirement.signedBy, fx.requirement.sigstoreKey, fx.requirement.sigstoreFulcio);
    const sigs = await withRpc(policy, fx.registriesD.both, (c) => signaturesOf(c, fx.ref));
    assert.deepEqual(sigs.map((s) => [s.format, s.verified, s.reason]), sigs.map((s) => [s.format, true, undefined]));
    assert.deepEqual(sigs.map((s) => s.identity), [fx.identity, fx.identity, fx.identity]);
  });

  it('a sigstore key: the key signature is verified, the Fulcio one refused with containers/image\'s reason', async () => {
    const sigs = await withRpc(only(fx.requirement.sigstoreKey), fx.registriesD.both, (c) => signaturesOf(c, fx.ref));
    const { gpg, key, fulcio } = byKind(sigs);
    assert.equal(key.verified, true);
    assert.equal(fulcio.verified, false);
    assert.match(fulcio.reason ?? '', /^cryptographic signature verification failed: invalid signature/);
    assert.match(gpg.reason ?? '', /no signedBy requirement/);
  });

  it('several requirements of a kind: a signature refused by all shows each one\'s reason', async () => {
    // Two Fulcio requirements: the key signature, which has no Rekor bundle, is refused by both.
    const policy = only(fx.requirement.sigstoreFulcio, fx.requirement.sigstoreFulcio);
    const sigs = await withRpc(policy, fx.registriesD.attachments, (c) => signaturesOf(c, fx.ref));
    assert.equal(sigs.length, 2, 'the lookaside is not configured: sigstore attachments only');
    const key = sigs.find((s) => s.certificateSubject === undefined)!;
    assert.equal(key.verified, false);
    assert.equal(key.reason, 'requirement 1 (sigstoreSigned): missing dev.sigstore.cosign/bundle annotation; requirement 2 (sigstoreSigned): missing dev.sigstore.cosign/bundle annotation');
    assert.equal(sigs.find((s) => s.certificateSubject === EMAIL)?.verified, true);
  });

  it('insecureAcceptAnything: signatures listed, none checked; an oci: image has none', async () => {
    const layout = path.join(tmp, 'oci-unsigned');
    writeOciImage(layout, { layers: [makeLayer({ 'x.txt': 'x\n' })] }, 'v1');
    await withRpc(only({ type: 'insecureAcceptAnything' }), fx.registriesD.lookaside, async (c) => {
      const sigs = await signaturesOf(c, fx.ref);
      assert.equal(sigs.length, 1);
      assert.deepEqual({ ...sigs[0], reason: undefined }, { format: 'simple-signing', identity: fx.identity, keyId: keyIdA(), verified: false, reason: undefined });
      assert.match(sigs[0]!.reason ?? '', /^not checked: .* no signedBy requirement$/);
      assert.deepEqual(await signaturesOf(c, `oci:${layout}:v1`), []);
      const unknown = await c.call('GetSignatures', { image: 999 });
      assert.ok(unknown.error !== undefined && unknown.error.message.length > 0);
    });
  });

  it('GetSignatures agrees with OpenImage: a refused image is refused with PolicyDenied on 1.0', async () => {
    await withRpc(only({ ...fx.requirement.signedBy, keyPath: fx.keys.b.binary }), fx.registriesD.both, async (c) => {
      const r = await c.call('OpenImage', { reference: fx.ref });
      assert.equal(r.error?.code, RpcErrorCodes.PolicyDenied);
      assert.match(r.error?.message ?? '', /Invalid GPG signature/);
    });
  });

  it('inspect: signatures and the verdict of an accepted image, with the scope that applied', () => {
    const scope = `${fx.registry.host}/app`;
    const policy = { default: [{ type: 'reject' }], transports: { docker: { [scope]: [fx.requirement.signedBy] } } };
    const r = inspect(policy, fx.registriesD.both, fx.ref);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.report?.Digest, fx.digest);
    assert.ok(Array.isArray(r.report?.Layers));
    assert.deepEqual(r.report?.Policy, { verdict: 'accepted', scope: `docker:${scope}` });
    const { gpg } = byKind(r.report?.Signatures as SignatureInfo[]);
    assert.deepEqual(gpg, { format: 'simple-signing', identity: fx.identity, keyId: keyIdA(), verified: true });
  });

  it('inspect: a refused image is reported with the reason, nothing resolved, exit 1', () => {
    const r = inspect(only({ ...fx.requirement.signedBy, keyPath: fx.keys.b.binary }), fx.registriesD.lookaside, fx.ref);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Invalid GPG signature: signed by key ID [0-9A-F]+, which is not among the accepted keys/);
    const report = r.report!;
    assert.equal(report.Digest, fx.digest);
    assert.equal(report.Layers, undefined);
    const policy = report.Policy as { verdict: string; scope: string; reason: string };
    assert.equal(policy.verdict, 'rejected');
    assert.equal(policy.scope, 'default');
    assert.ok(r.stderr.includes(policy.reason));
    assert.deepEqual(report.Signatures, [{ format: 'simple-signing', identity: fx.identity, keyId: keyIdA(), verified: false, reason: policy.reason }]);
  });
});
