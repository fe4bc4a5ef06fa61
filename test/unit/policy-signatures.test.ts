/**
 * Simple signing against hostile input: payloads signed for real by gpg (a signature is
 * `gpg --sign` of the JSON payload) but wrong in every way containers-signature(5) forbids,
 * blobs that are truncated or not OpenPGP at all, and signature stores over the size and
 * count bounds. Each is a clear rejection or error, never a crash or an acceptance.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Key } from 'openpgp';
import { UnsafeContentError } from '../../protocol/errors';
import { sha256Digest } from '../../server/image/digest';
import { MAX_SIGNATURE_SIZE, MAX_SIGNATURES, type ImageSignature } from '../../server/image/signatures';
import { loadKeys } from '../../server/policy/keyring';
import { SignatureRejected, verifySimpleSignature } from '../../server/policy/simple-signing';
import { parseImageName } from '../../server/transports/all';
import { closeTestContext, testContext } from '../harness/context';
import { findProgram, IN_CI } from '../harness/registry-tools';
import { createTestKeys, type TestKeys } from '../harness/signing';

const skip = findProgram('gpg') === undefined && !IN_CI ? 'gpg is missing: apt-get install gnupg' : false;
const MANIFEST = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
const DIGEST = sha256Digest(MANIFEST);
const IDENTITY = 'registry.example.com/app:v1';

let tmp: string;
let keys: TestKeys;
let keyring: Key[];

function sign(payload: string | Buffer, fingerprint = keys.a.fingerprint): Buffer {
  return execFileSync('gpg', ['--batch', '--no-tty', '--local-user', fingerprint, '--sign'], { env: keys.env, input: payload, stdio: ['pipe', 'pipe', 'pipe'] });
}

const payload = (critical: unknown, optional: unknown = { creator: 'test' }) => JSON.stringify({ critical, optional });
const good = { type: 'atomic container signature', image: { 'docker-manifest-digest': DIGEST }, identity: { 'docker-reference': IDENTITY } };
const rules = { manifest: MANIFEST, identityAccepted: (r: string) => r === IDENTITY };

async function verdict(blob: Buffer): Promise<string> {
  try {
    await verifySimpleSignature(blob, keyring, rules);
    return 'accepted';
  } catch (err) {
    assert.ok(err instanceof SignatureRejected, `not a rejection: ${String(err)}`);
    return err.message;
  }
}

describe('simple signing: hostile signatures', { skip, timeout: 60_000 }, () => {
  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-sigs-'));
    keys = createTestKeys(tmp);
    keyring = await loadKeys({ kind: 'keyPath', path: keys.a.binary });
  });
  after(() => {
    keys?.stopAgent();
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('a correct signature is accepted (the cases below differ from it in one thing)', async () => {
    assert.equal(await verdict(sign(payload(good))), 'accepted');
    assert.equal(await verdict(sign(JSON.stringify({ critical: good, optional: { creator: 'x', timestamp: 1700000000, other: [1] } }))), 'accepted');
  });

  const cases: [string, () => string | Buffer, RegExp][] = [
    ['wrong type', () => payload({ ...good, type: 'something else' }), /Unrecognized signature type something else/],
    ['extra critical key', () => payload({ ...good, extra: 1 }), /Unknown key "extra"/],
    ['extra key in image', () => payload({ ...good, image: { 'docker-manifest-digest': DIGEST, more: 1 } }), /Unknown key "more"/],
    ['missing identity', () => payload({ type: good.type, image: good.image }), /Key "identity" missing/],
    ['missing optional', () => JSON.stringify({ critical: good }), /Key "optional" missing/],
    ['duplicate critical', () => `{"critical":${JSON.stringify(good)},"critical":${JSON.stringify(good)},"optional":{}}`, /Duplicate key "critical"/],
    ['timestamp not an integer', () => payload(good, { timestamp: 'yesterday' }), /"timestamp" is not an integer/],
    ['digest of another manifest', () => payload({ ...good, image: { 'docker-manifest-digest': `sha256:${'0'.repeat(64)}` } }), /Signature for digest sha256:0+ does not match/],
    ['digest not a digest', () => payload({ ...good, image: { 'docker-manifest-digest': 'nonsense' } }), /Signature for digest nonsense does not match/],
    ['identity not accepted', () => payload({ ...good, identity: { 'docker-reference': 'registry.example.com/app:v2' } }), /Signature for identity registry.example.com\/app:v2 is not accepted/],
    ['identity not a string', () => payload({ ...good, identity: { 'docker-reference': 7 } }), /"docker-reference" is not a string/],
    ['payload not JSON', () => 'not json at all', /Invalid signature: invalid JSON/],
    ['payload deeply nested', () => `${'['.repeat(10000)}${']'.repeat(10000)}`, /Invalid signature: invalid JSON at offset \d+: nested too deeply/],
  ];
  for (const [name, make, reason] of cases) {
    it(name, async () => {
      assert.match(await verdict(sign(make())), reason);
    });
  }

  it('signed by a key that is not accepted', async () => {
    assert.match(await verdict(sign(payload(good), keys.b.fingerprint)), /Invalid GPG signature: signed by key ID [0-9A-F]{16}, which is not among the accepted keys/);
  });

  it('garbage, truncated and empty blobs', async () => {
    const real = sign(payload(good));
    for (const blob of [Buffer.from('garbage'), real.subarray(0, real.length - 20), real.subarray(0, 5), Buffer.alloc(0), Buffer.alloc(100_000, 0xff)]) {
      assert.match(await verdict(blob), /^(Invalid GPG signature|Unexpected GPG signature count)/);
    }
  });

  it('a blob with the payload but no signature', async () => {
    const unsigned = execFileSync('gpg', ['--batch', '--store'], { env: keys.env, input: payload(good) });
    assert.match(await verdict(unsigned), /Unexpected GPG signature count 0/);
  });

  it('a keyring that is not one', async () => {
    const bad = path.join(tmp, 'bad.gpg');
    writeFileSync(bad, 'not a keyring');
    await assert.rejects(loadKeys({ kind: 'keyPath', path: bad }), /reading public keys from .*bad.gpg/);
    await assert.rejects(loadKeys({ kind: 'keyPath', path: path.join(tmp, 'missing.gpg') }), /open .*missing.gpg: no such file or directory/);
    const both = await loadKeys({ kind: 'keyData', data: Buffer.concat([readFileSync(keys.a.armored), readFileSync(keys.b.armored)]) });
    assert.equal(both.length, 2, 'two armored blocks one after another');
  });
});

describe('signature stores over their bounds', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-sigdir-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function dirSignatures(files: Record<string, Buffer>): Promise<ImageSignature[]> {
    const img = path.join(dir, `img-${Math.random().toString(36).slice(2)}`);
    mkdirSync(img);
    writeFileSync(path.join(img, 'manifest.json'), MANIFEST);
    for (const [name, data] of Object.entries(files)) writeFileSync(path.join(img, name), data);
    const ctx = testContext();
    const source = await parseImageName(`dir:${img}`).newImageSource(ctx, new AbortController().signal);
    try {
      return await source.getSignatures!(undefined, new AbortController().signal);
    } finally {
      await source.close();
      await closeTestContext(ctx);
    }
  }

  it('dir: signature-1, -2 … up to the first missing one', async () => {
    const sigs = await dirSignatures({ 'signature-1': Buffer.from('one'), 'signature-2': Buffer.from('two'), 'signature-4': Buffer.from('four') });
    assert.deepEqual(sigs.map((s) => (s.format === 'simple-signing' ? String(s.blob) : s.format)), ['one', 'two']);
    assert.deepEqual(await dirSignatures({}), []);
  });

  it(`dir: a signature over ${MAX_SIGNATURE_SIZE} bytes is refused`, async () => {
    await assert.rejects(dirSignatures({ 'signature-1': Buffer.alloc(MAX_SIGNATURE_SIZE + 1) }), (err: Error) => err instanceof UnsafeContentError && /larger than 4194304 bytes/.test(err.message));
  });

  it(`dir: more than ${MAX_SIGNATURES} signatures are refused`, async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 1; i <= MAX_SIGNATURES + 1; i++) files[`signature-${i}`] = Buffer.from('x');
    await assert.rejects(dirSignatures(files), (err: Error) => err instanceof UnsafeContentError && /more than 128 signatures/.test(err.message));
    delete files[`signature-${MAX_SIGNATURES + 1}`];
    assert.equal((await dirSignatures(files)).length, MAX_SIGNATURES);
  });
});
