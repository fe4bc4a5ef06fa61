/**
 * The pieces under sigstoreSigned: the DER reader against hostile bytes and against certificates
 * from an independent writer and from openssl, PEM decoding as Go's encoding/pem does it,
 * RFC 8785 canonical JSON, parsing sigstoreSigned in policy files, registries.d's
 * use-sigstore-attachments, and sigstore signatures stored in dir: images.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { UnsafeContentError } from '../../protocol/errors';
import { loadRegistriesD, useSigstoreAttachmentsFor } from '../../server/config/registries-d';
import { signatureFromStoredBlob } from '../../server/image/signatures';
import { parsePolicy, PolicyFormatError } from '../../server/policy/parse';
import { OID, parseCertificate } from '../../server/policy/sigstore/certificate';
import { DerError, parseDer, timeValue } from '../../server/policy/sigstore/der';
import { decodePem } from '../../server/policy/sigstore/keys';
import { canonicalJson } from '../../server/policy/sigstore/rekor';
import { parseStrictJson } from '../../server/policy/strict-json';
import { findProgram } from '../harness/registry-tools';
import { TestFulcio, keyPairs } from '../harness/sigstore-signing';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-sigstore-parts-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('DER reader', () => {
  it('refuses truncated, indefinite, non-minimal and trailing encodings', () => {
    const cases: [number[], RegExp][] = [
      [[0x30], /truncated/],
      [[0x30, 0x80, 0x00, 0x00], /indefinite length/],
      [[0x04, 0x81, 0x05, 1, 2, 3, 4, 5], /non-minimal length/],
      [[0x04, 0x05, 1, 2], /runs past its end/],
      [[0x04, 0x01, 1, 0x00], /trailing data/],
      [[0x1f, 0x81, 0x00, 0x00], /high tag/],
      [[0x04, 0x85, 1, 1, 1, 1, 1], /length too large/],
    ];
    for (const [bytes, reason] of cases) assert.throws(() => parseDer(Buffer.from(bytes), 'x'), (e: Error) => e instanceof DerError && reason.test(e.message), String(bytes));
  });

  it('reads both time forms and refuses impossible dates', () => {
    assert.equal(timeValue({ tag: 0x17, bytes: Buffer.alloc(0), content: Buffer.from('260102030405Z') }, 't').toISOString(), '2026-01-02T03:04:05.000Z');
    assert.equal(timeValue({ tag: 0x18, bytes: Buffer.alloc(0), content: Buffer.from('20600102030405Z') }, 't').toISOString(), '2060-01-02T03:04:05.000Z');
    assert.throws(() => timeValue({ tag: 0x17, bytes: Buffer.alloc(0), content: Buffer.from('260230030405Z') }, 't'), DerError);
    assert.throws(() => timeValue({ tag: 0x17, bytes: Buffer.alloc(0), content: Buffer.from('2601020304Z') }, 't'), DerError);
  });

  it('parses a test leaf: validity, emails, issuer extension, key usage', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    const fulcio = new TestFulcio(now);
    const signer = keyPairs.p256();
    const cert = parseCertificate(fulcio.leaf(signer.publicKey).der);
    assert.equal(cert.notBefore.toISOString(), now.toISOString());
    assert.deepEqual(cert.emailAddresses, ['signer@example.com']);
    assert.equal(cert.extensions.get(OID.fulcioIssuerV1)?.value.toString(), 'https://issuer.example.com');
    assert.deepEqual(cert.extKeyUsage, [OID.codeSigning]);
    assert.equal(cert.keyUsage?.[0], true);
    assert.ok(cert.publicKey.equals(signer.publicKey));
    const root = parseCertificate(fulcio.root.der);
    assert.deepEqual(root.basicConstraints, { ca: true, maxPathLen: 1 });
    assert.ok(root.subject.equals(root.issuer));
  });

  it('parses a certificate openssl made, with the same fields openssl reports', { skip: findProgram('openssl') === undefined ? 'no openssl' : false }, () => {
    const key = path.join(tmp, 'k.pem');
    const crt = path.join(tmp, 'c.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '3', '-subj', '/CN=openssl test',
      '-addext', 'subjectAltName=email:a@example.com,DNS:x.example.com,email:b@example.com', '-addext', 'extendedKeyUsage=codeSigning',
      '-addext', `1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:https://o.example.com`], { stdio: 'ignore' });
    const pem = Buffer.from(execFileSync('cat', [crt]));
    const block = decodePem(pem)!;
    const cert = parseCertificate(block.bytes);
    assert.deepEqual(cert.emailAddresses, ['a@example.com', 'b@example.com']);
    assert.deepEqual(cert.extKeyUsage, [OID.codeSigning]);
    assert.equal(cert.notAfter.getTime(), new Date(cert.x509.validTo).getTime());
    assert.equal(cert.notBefore.getTime(), new Date(cert.x509.validFrom).getTime());
  });
});

describe('PEM as Go decodes it', () => {
  it('finds the first block after other text, skips headers, gives the rest', () => {
    const body = Buffer.from('hello').toString('base64');
    const text = `junk\n-----BEGIN THING-----\nProc-Type: 4\n\n${body}\n-----END THING-----\nrest`;
    const block = decodePem(Buffer.from(text))!;
    assert.equal(block.type, 'THING');
    assert.equal(block.bytes.toString(), 'hello');
    assert.equal(block.rest.toString(), 'rest');
    assert.equal(decodePem(Buffer.from(`-----BEGIN A-----\n${body}\n-----END B-----\n`)), undefined);
    assert.equal(decodePem(Buffer.from(`-----BEGIN A-----\n!!!!\n-----END A-----\n`)), undefined);
    assert.equal(decodePem(Buffer.from(`-----BEGIN A-----\n${body}\n-----END A-----\n`))!.rest.length, 0);
  });

  it('stays linear on hostile text: many BEGIN lines, one END far away', () => {
    const started = Date.now();
    assert.equal(decodePem(Buffer.from(`${'-----BEGIN A-----\n'.repeat(200_000)}-----END B-----\n`)), undefined);
    const same = decodePem(Buffer.from(`${'-----BEGIN A-----\n'.repeat(200_000)}-----END A-----\n`));
    assert.equal(same?.bytes.length, 0);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });
});

describe('canonical JSON (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units at every level and writes numbers and strings as ECMAScript does', () => {
    const text = '{ "b": [1.0, 1e2, -0.5, "\\u00e9\\n"], "a": {"z": null, "é": true, "Z": false}, "\\ud83d\\ude00": 1, "\\ufb01": 2 }';
    assert.equal(canonicalJson(parseStrictJson(text)), '{"a":{"Z":false,"z":null,"é":true},"b":[1,100,-0.5,"é\\n"],"😀":1,"ﬁ":2}');
  });

  it('refuses duplicate keys', () => {
    assert.throws(() => canonicalJson(parseStrictJson('{"a":1,"a":2}')), /Duplicate key "a"/);
  });
});

describe('sigstoreSigned in policy files', () => {
  const req = (r: Record<string, unknown>) => JSON.stringify({ default: [{ type: 'sigstoreSigned', signedIdentity: { type: 'matchRepository' }, ...r }] });
  const b64 = Buffer.from('pem').toString('base64');

  it('accepts each trust root form', () => {
    for (const r of [{ keyPath: '/k.pub' }, { keyPaths: ['/a', '/b'] }, { keyData: b64 }, { keyDatas: [b64, b64] }, { keyPath: '/k', rekorPublicKeyPath: '/r' },
      { fulcio: { caPath: '/ca', oidcIssuer: 'https://i', subjectEmail: 'e@x' }, rekorPublicKeyData: b64 }]) {
      const policy = parsePolicy(req(r));
      assert.equal(policy.default[0]!.type, 'sigstoreSigned', JSON.stringify(r));
    }
  });

  it('refuses inconsistent ones in containers/image\'s words', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be specified'],
      [{ keyPath: '/a', keyData: b64 }, 'exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be specified'],
      [{ keyPaths: [] }, '"keyPaths" contains no entries'],
      [{ keyDatas: [] }, '"keyDatas" contains no entries'],
      [{ keyData: 'not base64!' }, 'illegal base64 data in "keyData"'],
      [{ fulcio: { caPath: '/ca', oidcIssuer: 'https://i', subjectEmail: 'e@x' } }, 'must be specified if fulcio is used'],
      [{ fulcio: { oidcIssuer: 'https://i', subjectEmail: 'e@x' }, rekorPublicKeyPath: '/r' }, 'At least one of caPath and caData must be specified'],
      [{ fulcio: { caPath: '/ca', caData: b64, oidcIssuer: 'https://i', subjectEmail: 'e@x' }, rekorPublicKeyPath: '/r' }, 'caPath and caData cannot be used simultaneously'],
      [{ fulcio: { caPath: '/ca', subjectEmail: 'e@x' }, rekorPublicKeyPath: '/r' }, 'oidcIssuer not specified'],
      [{ fulcio: { caPath: '/ca', oidcIssuer: 'https://i' }, rekorPublicKeyPath: '/r' }, 'subjectEmail not specified'],
      [{ fulcio: { caPath: '/ca', oidcIssuer: 'https://i', subjectEmail: 'e@x', extra: 1 }, rekorPublicKeyPath: '/r' }, 'Unknown key "extra"'],
      [{ keyPath: '/a', rekorPublicKeyPath: '/r', rekorPublicKeyData: b64 }, 'at most one of rekorPublickeyPath'],
      [{ pki: {}, rekorPublicKeyPath: '/r' }, 'are not supported for pki'],
    ];
    for (const [r, message] of cases) {
      assert.throws(() => parsePolicy(req(r)), (e: Error) => e instanceof PolicyFormatError && e.message.includes(message), `${JSON.stringify(r)} -> ${message}`);
    }
    assert.throws(() => parsePolicy(JSON.stringify({ default: [{ type: 'sigstoreSigned', keyPath: '/k' }] })), /signedIdentity not specified/);
  });
});

describe('registries.d use-sigstore-attachments', () => {
  it('the most specific entry that says decides, then default-docker, else no', async () => {
    const dir = path.join(tmp, 'registries.d');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'a.yaml'), 'default-docker:\n  use-sigstore-attachments: true\ndocker:\n  r.example.com/ns:\n    use-sigstore-attachments: false\n  r.example.com/ns/app:\n    lookaside: file:///x\n');
    const config = await loadRegistriesD(dir);
    assert.equal(useSigstoreAttachmentsFor(config, ['r.example.com/ns/app', 'r.example.com/ns', 'r.example.com']), false);
    assert.equal(useSigstoreAttachmentsFor(config, ['r.example.com/other', 'r.example.com']), true);
    assert.equal(useSigstoreAttachmentsFor(await loadRegistriesD(path.join(tmp, 'missing')), ['r.example.com']), false);
    writeFileSync(path.join(dir, 'b.yaml'), 'docker:\n  q.example.com:\n    use-sigstore-attachments: "yes"\n');
    await assert.rejects(loadRegistriesD(dir), /use-sigstore-attachments must be true or false/);
  });
});

describe('sigstore signatures stored in dir:', () => {
  it('the zero-byte format prefix selects the format', () => {
    const json = JSON.stringify({ mimeType: 'application/vnd.dev.cosign.simplesigning.v1+json', payload: Buffer.from('{}').toString('base64'), annotations: { a: 'b' } });
    const sig = signatureFromStoredBlob(Buffer.concat([Buffer.from('\x00sigstore-json\n'), Buffer.from(json)]), 'sig');
    assert.deepEqual(sig, { format: 'sigstore-json', mimeType: 'application/vnd.dev.cosign.simplesigning.v1+json', payload: Buffer.from('{}'), annotations: new Map([['a', 'b']]) });
    assert.deepEqual(signatureFromStoredBlob(Buffer.from('\x00simple-signing\nXYZ'), 'sig'), { format: 'simple-signing', blob: Buffer.from('XYZ') });
    assert.deepEqual(signatureFromStoredBlob(Buffer.from([0xa3, 1]), 'sig'), { format: 'simple-signing', blob: Buffer.from([0xa3, 1]) });
    for (const bad of ['\x00sigstore-json', '\x00other\n{}', '\x00sigstore-json\nnot json', '\x00sigstore-json\n{"annotations":{"a":1}}', '\x00sigstore-json\n{"payload":"%%"}']) {
      assert.throws(() => signatureFromStoredBlob(Buffer.from(bad), 'sig'), UnsafeContentError, JSON.stringify(bad));
    }
  });
});
