/**
 * sigstoreSigned verification against signatures made in the test with node:crypto: keys of
 * every supported type, Rekor SETs, a Fulcio-like CA chain, and each piece made wrong on
 * purpose. Every case is a verdict with a reason, never an exception.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { sha256Digest } from '../../server/image/digest';
import type { ImageSignature } from '../../server/image/signatures';
import { PolicyDeniedError } from '../../protocol/errors';
import { openImageByName } from '../../server/image/open';
import { parsePolicy } from '../../server/policy/parse';
import { sigstoreSignedRefusal } from '../../server/policy/sigstore/requirement';
import type { PemSource, SigstoreTrust } from '../../server/policy/types';
import { ANNOTATIONS, EMAIL, ISSUER, keyPairs, payloadFor, publicKeyPem, rekorSet, signPayload, SIGSTORE_MEDIA_TYPE, TestFulcio } from '../harness/sigstore-signing';
import { closeTestContext, neverAborted, testContext } from '../harness/context';
import { makeLayer, writeOciImage } from '../harness/oci-builder';
import { findProgram } from '../harness/registry-tools';
import { ext, OIDS, type KeyPair } from '../harness/x509-builder';

const MANIFEST = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}');
const DIGEST = sha256Digest(MANIFEST);
const IDENTITY = 'registry.example.com/app:v1';
const rules = { manifest: MANIFEST, identityAccepted: (r: string) => r === IDENTITY };

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-sigstore-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const pemData = (...pems: string[]): PemSource => (pems.length === 1 ? { kind: 'data', data: Buffer.from(pems[0]!) } : { kind: 'datas', datas: pems.map((p) => Buffer.from(p)) });
const keysTrust = (keys: PemSource, rekorKeys?: PemSource): SigstoreTrust => ({ kind: 'keys', keys, rekorKeys });

function sigstoreSig(payload: Buffer, annotations: Record<string, string>, mimeType = SIGSTORE_MEDIA_TYPE): ImageSignature {
  return { format: 'sigstore-json', mimeType, payload, annotations: new Map(Object.entries(annotations)) };
}

function signedWith(key: KeyPair, payload = payloadFor(DIGEST, IDENTITY)): ImageSignature {
  return sigstoreSig(payload, { [ANNOTATIONS.signature]: signPayload(key.privateKey, payload) });
}

async function verdict(trust: SigstoreTrust, sigs: readonly ImageSignature[]): Promise<string> {
  return (await sigstoreSignedRefusal(trust, sigs, rules)) ?? 'accepted';
}

const keys = { p256: keyPairs.p256(), p384: keyPairs.p384(), rsa: keyPairs.rsa(), ed25519: keyPairs.ed25519(), other: keyPairs.p256() };
const trustOf = (k: KeyPair) => keysTrust(pemData(publicKeyPem(k.publicKey)));

describe('sigstoreSigned with public keys', () => {
  for (const [name, key] of Object.entries(keys).filter(([n]) => n !== 'other')) {
    it(`${name}: the right key accepts, another key refuses`, async () => {
      assert.equal(await verdict(trustOf(key), [signedWith(key)]), 'accepted');
      assert.match(await verdict(trustOf(keys.other), [signedWith(key)]), /^cryptographic signature verification failed/);
    });
  }

  it('an RSA key in PKCS#1 form ("RSA PUBLIC KEY")', async () => {
    const pkcs1 = keys.rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    assert.equal(await verdict(keysTrust(pemData(pkcs1)), [signedWith(keys.rsa)]), 'accepted');
  });

  it('keyPath, keyPaths and keyDatas: any of several keys', async () => {
    const a = path.join(tmp, 'a.pub');
    const b = path.join(tmp, 'b.pub');
    writeFileSync(a, publicKeyPem(keys.other.publicKey));
    writeFileSync(b, publicKeyPem(keys.ed25519.publicKey));
    assert.equal(await verdict(keysTrust({ kind: 'path', path: b }), [signedWith(keys.ed25519)]), 'accepted');
    assert.equal(await verdict(keysTrust({ kind: 'paths', paths: [a, b] }), [signedWith(keys.ed25519)]), 'accepted');
    assert.equal(await verdict(keysTrust(pemData(publicKeyPem(keys.other.publicKey), publicKeyPem(keys.rsa.publicKey))), [signedWith(keys.rsa)]), 'accepted');
    assert.match(await verdict(keysTrust({ kind: 'path', path: path.join(tmp, 'missing.pub') }), [signedWith(keys.rsa)]), /^open .*missing\.pub: no such file or directory/);
  });

  it('unusable key material is a reason', async () => {
    assert.equal(await verdict(keysTrust(pemData('not a key')), [signedWith(keys.p256)]), 'parsing public key 1: PEM decoding failed');
    const priv = keys.p256.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.match(await verdict(keysTrust(pemData(priv)), [signedWith(keys.p256)]), /unknown Public key PEM file type: PRIVATE KEY/);
    const x25519 = (await import('node:crypto')).generateKeyPairSync('x25519').publicKey;
    assert.match(await verdict(keysTrust(pemData(publicKeyPem(x25519))), [signedWith(keys.p256)]), /unsupported public key type x25519/);
  });

  it('no signatures, and signatures of other kinds, are counted', async () => {
    assert.equal(await verdict(trustOf(keys.p256), []), 'A signature was required, but no signature exists');
    const other = [{ format: 'simple-signing', blob: Buffer.from('x') } as const, sigstoreSig(Buffer.from('{}'), {}, 'application/vnd.in-toto+json')];
    assert.equal(await verdict(trustOf(keys.p256), other), 'A signature was required, but no signature exists (1 non-sigstore signatures, 1 sigstore non-signature attachments)');
  });

  it('one accepted signature among several is enough; otherwise every reason is given', async () => {
    assert.equal(await verdict(trustOf(keys.p256), [signedWith(keys.other), signedWith(keys.p256)]), 'accepted');
    assert.match(await verdict(trustOf(keys.p256), [signedWith(keys.other), signedWith(keys.rsa)]), /^None of the signatures were accepted, reasons: cryptographic .*; cryptographic /);
  });

  it('the payload is checked after the signature: digest, identity, strict critical section', async () => {
    const k = keys.p256;
    const cases: [Buffer, RegExp][] = [
      [payloadFor(sha256Digest('other'), IDENTITY), /^Signature for digest sha256:[0-9a-f]{64} does not match$/],
      [payloadFor(DIGEST, 'registry.example.com/app:v2'), /^Signature for identity registry.example.com\/app:v2 is not accepted$/],
      [payloadFor(DIGEST, IDENTITY, { critical: { extra: 1 } }), /Unknown key "extra"/],
      [payloadFor(DIGEST, IDENTITY, { type: 'atomic container signature' }), /Unrecognized signature type atomic container signature/],
      [payloadFor('sha256:abc', IDENTITY), /invalid docker-manifest-digest value "sha256:abc"/],
      [payloadFor(DIGEST, IDENTITY, { optional: { timestamp: 1.5 } }), /optional.timestamp is not an integer/],
      [payloadFor(DIGEST, IDENTITY, { optional: { creator: 7 } }), /optional.creator is not a string/],
      [Buffer.from(`{"critical":{},"critical":{},"optional":null}`), /Duplicate key "critical"/],
      [Buffer.from('not json'), /invalid JSON/],
      [Buffer.from('{"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"x"}},"optional":null}'), /Key "identity" missing/],
    ];
    for (const [payload, reason] of cases) assert.match(await verdict(trustOf(k), [signedWith(k, payload)]), reason, payload.toString());
    // cosign writes "optional": null when there are no annotations; other optional keys are ignored.
    assert.equal(await verdict(trustOf(k), [signedWith(k, payloadFor(DIGEST, IDENTITY, { optional: null }))]), 'accepted');
    assert.equal(await verdict(trustOf(k), [signedWith(k, payloadFor(DIGEST, IDENTITY, { optional: { anything: [1] } }))]), 'accepted');
  });

  it('hostile annotations: missing, garbage base64, a valid signature of other bytes', async () => {
    const payload = payloadFor(DIGEST, IDENTITY);
    assert.equal(await verdict(trustOf(keys.p256), [sigstoreSig(payload, {})]), 'missing dev.cosignproject.cosign/signature annotation');
    assert.match(await verdict(trustOf(keys.p256), [sigstoreSig(payload, { [ANNOTATIONS.signature]: '%%%not base64' })]), /^base64 decoding: illegal base64 data/);
    assert.match(await verdict(trustOf(keys.p256), [sigstoreSig(payload, { [ANNOTATIONS.signature]: '' })]), /^cryptographic signature verification failed/);
    const tampered = Buffer.from(payload.toString().replace(IDENTITY, 'registry.example.com/evil:v1'));
    assert.match(await verdict(trustOf(keys.p256), [sigstoreSig(tampered, { [ANNOTATIONS.signature]: signPayload(keys.p256.privateKey, payload) })]), /^cryptographic signature verification failed/);
  });
});

describe('sigstoreSigned with a key and a Rekor SET', () => {
  const rekor = keyPairs.p256();
  const rekorTrust = (k: KeyPair) => keysTrust(pemData(publicKeyPem(k.publicKey)), pemData(publicKeyPem(rekor.publicKey)));
  function logged(k: KeyPair, o: Partial<Parameters<typeof rekorSet>[1]> = {}, setKey = rekor.privateKey): ImageSignature {
    const payload = payloadFor(DIGEST, IDENTITY);
    const base64Signature = signPayload(k.privateKey, payload);
    const set = rekorSet(setKey, { signerPem: publicKeyPem(k.publicKey), base64Signature, payload, integratedTime: 1_700_000_000, ...o });
    return sigstoreSig(payload, { [ANNOTATIONS.signature]: base64Signature, [ANNOTATIONS.bundle]: set });
  }

  it('a SET for the key accepts', async () => {
    assert.equal(await verdict(rekorTrust(keys.p256), [logged(keys.p256)]), 'accepted');
    assert.equal(await verdict(rekorTrust(keys.rsa), [logged(keys.rsa)]), 'accepted');
  });

  it('every way a SET can be wrong is a reason', async () => {
    const k = keys.p256;
    const nope = /^No public key verified against the RekorSET: /;
    assert.match(await verdict(rekorTrust(k), [logged(k, {}, keyPairs.p256().privateKey)]), /cryptographic signature verification of Rekor SET failed/);
    assert.match(await verdict(rekorTrust(k), [logged(k, { signerPem: publicKeyPem(keys.other.publicKey) })]), /publicKey in Rekor SET does not match/);
    assert.match(await verdict(rekorTrust(k), [logged(k, { base64Signature: signPayload(k.privateKey, Buffer.from('x')) })]), /signature in Rekor SET does not match/);
    assert.match(await verdict(rekorTrust(k), [logged(k, { payloadHash: '00'.repeat(32) })]), /payload in Rekor SET does not match/);
    assert.match(await verdict(rekorTrust(k), [logged(k, { kind: 'rekord' })]), /invalid kind value: "rekord"/);
    assert.match(await verdict(rekorTrust(k), [logged(k, { apiVersion: '0.0.2' })]), /unsupported Rekor SET Payload hashedrekord version/);
    const payload = payloadFor(DIGEST, IDENTITY);
    const sig = signPayload(k.privateKey, payload);
    assert.equal(await verdict(rekorTrust(k), [sigstoreSig(payload, { [ANNOTATIONS.signature]: sig })]), 'missing dev.sigstore.cosign/bundle annotation');
    for (const garbage of ['', '{}', 'null', '{"SignedEntryTimestamp":"!!","Payload":{}}', '{"SignedEntryTimestamp":"","Payload":{},"x":1}']) {
      assert.match(await verdict(rekorTrust(k), [sigstoreSig(payload, { [ANNOTATIONS.signature]: sig, [ANNOTATIONS.bundle]: garbage })]), nope, garbage);
    }
  });

  it('Rekor keys must be ECDSA', async () => {
    const trust = keysTrust(pemData(publicKeyPem(keys.p256.publicKey)), pemData(publicKeyPem(keys.rsa.publicKey)));
    assert.equal(await verdict(trust, [logged(keys.p256)]), 'Rekor public key 1 is not using ECDSA');
  });
});

describe('sigstoreSigned with Fulcio', () => {
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const fulcio = new TestFulcio(now);
  const rekor = keyPairs.p256();
  const signer = keyPairs.p256();
  const loggedAt = Math.floor(now.getTime() / 1000) + 60;
  const fulcioTrust = (o: { ca?: string; issuer?: string; email?: string } = {}): SigstoreTrust => ({
    kind: 'fulcio',
    fulcio: { ca: { kind: 'data', data: Buffer.from(o.ca ?? fulcio.root.pem) }, oidcIssuer: o.issuer ?? ISSUER, subjectEmail: o.email ?? EMAIL },
    rekorKeys: pemData(publicKeyPem(rekor.publicKey)),
  });
  function keyless(cert: string, o: { chain?: string | null; integratedTime?: number; payload?: Buffer } = {}): ImageSignature {
    const payload = o.payload ?? payloadFor(DIGEST, IDENTITY);
    const base64Signature = signPayload(signer.privateKey, payload);
    const set = rekorSet(rekor.privateKey, { signerPem: cert, base64Signature, payload, integratedTime: o.integratedTime ?? loggedAt });
    return sigstoreSig(payload, {
      [ANNOTATIONS.signature]: base64Signature, [ANNOTATIONS.bundle]: set, [ANNOTATIONS.certificate]: cert,
      ...(o.chain === null ? {} : { [ANNOTATIONS.chain]: o.chain ?? fulcio.chainPem() }),
    });
  }

  it('a certificate from the CA, with the issuer and email, logged while valid, accepts', async () => {
    assert.equal(await verdict(fulcioTrust(), [keyless(fulcio.leaf(signer.publicKey).pem)]), 'accepted');
    // The v2 issuer extension alone, or both agreeing.
    assert.equal(await verdict(fulcioTrust(), [keyless(fulcio.leaf(signer.publicKey, { issuer: null, issuerV2: ISSUER }).pem)]), 'accepted');
    assert.equal(await verdict(fulcioTrust(), [keyless(fulcio.leaf(signer.publicKey, { issuerV2: ISSUER }).pem)]), 'accepted');
  });

  it('the wrong CA, issuer, email, time, or chain is refused with the reason', async () => {
    const leaf = fulcio.leaf(signer.publicKey).pem;
    const otherCa = new TestFulcio(now, 'another root');
    assert.match(await verdict(fulcioTrust({ ca: otherCa.root.pem }), [keyless(leaf)]), /^verifying leaf certificate failed: x509: certificate signed by unknown authority/);
    // Same names, other keys: only the signatures tell them apart.
    const impostor = new TestFulcio(now);
    assert.match(await verdict(fulcioTrust({ ca: impostor.root.pem }), [keyless(leaf)]), /^verifying leaf certificate failed: x509: certificate signed by unknown authority/);
    assert.match(await verdict(fulcioTrust(), [keyless(impostor.leaf(signer.publicKey).pem, { chain: impostor.chainPem() })]), /certificate signed by unknown authority/);
    assert.equal(await verdict(fulcioTrust({ issuer: 'https://other.example.com' }), [keyless(leaf)]), 'Unexpected Fulcio OIDC issuer "https://issuer.example.com"');
    assert.equal(await verdict(fulcioTrust({ email: 'else@example.com' }), [keyless(leaf)]), 'Required email "else@example.com" not found (got ["signer@example.com"])');
    assert.match(await verdict(fulcioTrust(), [keyless(leaf, { integratedTime: loggedAt + 3600 })]), /certificate has expired or is not yet valid: current time .* is after/);
    assert.match(await verdict(fulcioTrust(), [keyless(leaf, { integratedTime: loggedAt - 3600 })]), /is before/);
    assert.match(await verdict(fulcioTrust(), [keyless(leaf, { chain: null })]), /certificate signed by unknown authority/);
    assert.equal(await verdict(fulcioTrust(), [keyless(fulcio.leaf(signer.publicKey, { issuer: null }).pem)]), 'Fulcio certificate is missing the issuer extension');
    assert.match(await verdict(fulcioTrust(), [keyless(fulcio.leaf(signer.publicKey, { issuerV2: 'https://x' }).pem)]), /inconsistent OIDC issuer extension values/);
    assert.match(await verdict(fulcioTrust(), [keyless(fulcio.leaf(signer.publicKey, { eku: OIDS.serverAuth }).pem)]), /incompatible key usage/);
    assert.match(await verdict(fulcioTrust(), [keyless(fulcio.leaf(signer.publicKey, { extra: [{ oid: '1.2.3.4', critical: true, value: Buffer.from([5, 0]) }] }).pem)]), /unhandled critical extension/);
    // A certificate for another key: the SET and chain are fine, the payload signature is not.
    assert.match(await verdict(fulcioTrust(), [keyless(fulcio.leaf(keys.other.publicKey).pem)]), /^cryptographic signature verification failed/);
  });

  it('an intermediate that is not a CA, and name constraints, are refused', async () => {
    const world = new TestFulcio(now, 'constrained');
    const notCa = (await import('../harness/x509-builder')).buildCertificate({
      subject: 'not a ca', publicKey: world.intermediateKey.publicKey, issuer: { name: world.root.name, privateKey: world.rootKey.privateKey },
      notBefore: new Date(now.getTime() - 86400_000), notAfter: new Date(now.getTime() + 86400_000), extensions: [ext.basicConstraints(false)],
    });
    const leaf = (await import('../harness/x509-builder')).buildCertificate({
      subject: '', publicKey: signer.publicKey, issuer: { name: 'not a ca', privateKey: world.intermediateKey.privateKey },
      notBefore: now, notAfter: new Date(now.getTime() + 600_000), extensions: [ext.issuerV1(ISSUER), ext.emails(EMAIL)],
    });
    assert.match(await verdict(fulcioTrust({ ca: world.root.pem }), [keyless(leaf.pem, { chain: notCa.pem + world.root.pem })]), /certificate signed by unknown authority/);
    const build = (await import('../harness/x509-builder')).buildCertificate;
    const constrainedRoot = build({
      subject: 'constrained root', publicKey: world.rootKey.publicKey, selfKey: world.rootKey.privateKey,
      notBefore: new Date(now.getTime() - 86400_000), notAfter: new Date(now.getTime() + 86400_000), extensions: [ext.basicConstraints(true), ext.nameConstraints()],
    });
    const underConstraint = build({
      subject: '', publicKey: signer.publicKey, issuer: { name: 'constrained root', privateKey: world.rootKey.privateKey },
      notBefore: now, notAfter: new Date(now.getTime() + 600_000), extensions: [ext.issuerV1(ISSUER), ext.emails(EMAIL)],
    });
    assert.match(await verdict(fulcioTrust({ ca: constrainedRoot.pem }), [keyless(underConstraint.pem, { chain: null })]), /name constraints, which are not supported/);
    // The same root without them accepts the same kind of leaf: the refusal above is the constraint's.
    const plainRoot = build({
      subject: 'plain root', publicKey: world.rootKey.publicKey, selfKey: world.rootKey.privateKey,
      notBefore: new Date(now.getTime() - 86400_000), notAfter: new Date(now.getTime() + 86400_000), extensions: [ext.basicConstraints(true)],
    });
    const underPlain = build({
      subject: '', publicKey: signer.publicKey, issuer: { name: 'plain root', privateKey: world.rootKey.privateKey },
      notBefore: now, notAfter: new Date(now.getTime() + 600_000), extensions: [ext.issuerV1(ISSUER), ext.emails(EMAIL)],
    });
    assert.equal(await verdict(fulcioTrust({ ca: plainRoot.pem }), [keyless(underPlain.pem, { chain: null })]), 'accepted');
  });

  it('hostile certificate annotations are reasons', async () => {
    const payload = payloadFor(DIGEST, IDENTITY);
    for (const cert of ['', 'garbage', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', fulcio.root.pem + fulcio.root.pem]) {
      const sig = keyless(cert, { payload });
      const why = await verdict(fulcioTrust(), [sig]);
      assert.notEqual(why, 'accepted');
    }
    assert.equal(await verdict(fulcioTrust({ ca: 'no certificates here' }), [keyless(fulcio.leaf(signer.publicKey).pem)]), 'error loading Fulcio CA certificates');
  });
});

describe('sigstoreSigned on a dir: image, through the one open path', { skip: findProgram('skopeo') === undefined ? 'skopeo is missing' : false }, () => {
  it('a signature-1 file in containers/image\'s sigstore format is verified; a tampered manifest is refused', async () => {
    const layout = path.join(tmp, 'layout');
    writeOciImage(layout, { layers: [makeLayer({ 'a.txt': 'dir sigstore\n' })] }, 'v1');
    const dir = path.join(tmp, 'dir-image');
    execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${layout}:v1`, `dir:${dir}`]);
    const manifest = readFileSync(path.join(dir, 'manifest.json'));
    const payload = payloadFor(sha256Digest(manifest), 'registry.example.com/app:v1');
    const stored = JSON.stringify({ mimeType: SIGSTORE_MEDIA_TYPE, payload: payload.toString('base64'), annotations: { [ANNOTATIONS.signature]: signPayload(keys.ed25519.privateKey, payload) } });
    writeFileSync(path.join(dir, 'signature-1'), Buffer.concat([Buffer.from('\x00sigstore-json\n'), Buffer.from(stored)]));
    const policy = (key: KeyPair) => parsePolicy(JSON.stringify({ default: [{
      type: 'sigstoreSigned', keyData: Buffer.from(publicKeyPem(key.publicKey)).toString('base64'),
      signedIdentity: { type: 'exactRepository', dockerRepository: 'registry.example.com/app' },
    }] }));
    const open = async (key: KeyPair): Promise<string> => {
      const ctx = testContext({ policy: policy(key) });
      try {
        const image = await openImageByName(`dir:${dir}`, ctx, neverAborted());
        await image.close();
        return 'accepted';
      } catch (err) {
        assert.ok(err instanceof PolicyDeniedError, String(err));
        return err.message;
      } finally {
        await closeTestContext(ctx);
      }
    };
    assert.equal(await open(keys.ed25519), 'accepted');
    assert.match(await open(keys.p256), /cryptographic signature verification failed: invalid signature when validating ASN.1 encoded signature/);
    writeFileSync(path.join(dir, 'manifest.json'), Buffer.concat([manifest, Buffer.from('\n')]));
    assert.match(await open(keys.ed25519), /^Signature for digest sha256:[0-9a-f]{64} does not match$/);
  });
});
