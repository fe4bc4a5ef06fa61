/**
 * The registry signature API extension against the real thing: docker-registry (with Basic
 * auth) behind a proxy that adds "X-Registry-Supports-Signatures: 1" and keeps the signatures
 * `skopeo copy --sign-by` PUTs to /extensions/v2/…; then OpenImage through bin/layerpipe with
 * signedBy policies, each verdict compared with `skopeo --policy P copy`'s on the same inputs.
 * The extension takes the lookaside's place when advertised, is read with the registry's
 * credentials, and hostile lists (garbage, huge, too many, malformed) are refused clearly.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../clients/typescript';
import { makeLayer, writeOciImage } from '../harness/oci-builder';
import { skopeoVerdict as skopeoVerdictOf, type Verdict } from '../harness/policy-verdicts';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { assertRegistryTools, findProgram, IN_CI, registrySuiteSkip } from '../harness/registry-tools';
import { startSignatureExtension, type SignatureExtensionServer } from '../harness/signature-extension';
import { createTestKeys, standaloneSign, type TestKeys } from '../harness/signing';

const skip = registrySuiteSkip() || (findProgram('gpg') === undefined && !IN_CI ? 'gpg is missing: apt-get install gnupg' : false);

let tmp: string;
let keys: TestKeys;
let registry: RunningRegistry;
let ext: SignatureExtensionServer;
let registriesD: string;
let lookaside: string;
const digests = new Map<string, string>();
let counter = 0;

/** Asynchronous: the extension proxy answering skopeo runs in this process. */
function sk(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', ['--insecure-policy', '--registries.d', registriesD, ...args], { env: keys.env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) resolve(stdout);
      else reject(new Error(`skopeo ${args.join(' ')}: ${stderr}`));
    });
  });
}

/** Pushes the test image to REPO:v1 through the extension (signatures, if any, land there). */
async function push(layout: string, repo: string, signBy?: string): Promise<string> {
  const digestFile = path.join(tmp, `digest-${++counter}`);
  await sk(['copy', '-q', '--dest-tls-verify=false', '--dest-creds', registry.creds!, '--digestfile', digestFile,
    ...(signBy ? ['--sign-by', signBy] : []), `oci:${layout}:v1`, `docker://${ext.host}/${repo}:v1`]);
  const digest = readFileSync(digestFile, 'utf8').trim();
  digests.set(repo, digest);
  return digest;
}

const ref = (repo: string) => `docker://${ext.host}/${repo}:v1`;

function policyFile(keyPath: string): string {
  const file = path.join(tmp, `policy-${++counter}.json`);
  writeFileSync(file, JSON.stringify({ default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath }] }));
  return file;
}

const skopeoVerdict = (policy: string, image: string): Promise<Verdict> =>
  skopeoVerdictOf({ policy, image, registriesD, scratchDir: tmp, copyFlags: ['--src-creds', registry.creds!] });

async function layerpipeVerdict(proxy: ImageProxy, image: string): Promise<Verdict> {
  try {
    await proxy.closeImage(await proxy.openImage(image));
    return { accepted: true };
  } catch (err) {
    return { accepted: false, reason: (err as Error).message };
  }
}

interface Case {
  readonly repo: string;
  readonly key: 'a' | 'b';
  readonly accepted: boolean;
  /** A piece of layerpipe's reason. */
  readonly reason?: RegExp;
  /** skopeo's verdict when it differs from layerpipe's, and why. */
  readonly skopeo?: { readonly accepted: boolean; readonly why: string };
}

const CASES: readonly Case[] = [
  { repo: 'app/signed', key: 'a', accepted: true },
  { repo: 'app/signed', key: 'b', accepted: false, reason: /Invalid GPG signature/ },
  { repo: 'app/unsigned', key: 'a', accepted: false, reason: /A signature was required, but no signature exists/ },
  // A valid signature in the lookaside is not read: the advertised extension takes its place.
  { repo: 'app/lookaside', key: 'a', accepted: false, reason: /A signature was required, but no signature exists/ },
  { repo: 'app/garbage', key: 'a', accepted: false },
  { repo: 'app/other-type', key: 'a', accepted: false, reason: /A signature was required, but no signature exists/ },
  { repo: 'app/not-json', key: 'a', accepted: false, reason: /decoding signature list/ },
  { repo: 'app/missing', key: 'a', accepted: false, reason: /downloading signatures for sha256:[0-9a-f]{64} in .*: invalid status code from registry 404/ },
  { repo: 'app/huge', key: 'a', accepted: false, reason: /signature list of .* is (more than the )?\d* ?bytes|more than the 4194304 bytes allowed/ },
  { repo: 'app/128', key: 'a', accepted: true },
  {
    repo: 'app/129', key: 'a', accepted: false, reason: /more than 128 signatures/,
    skopeo: { accepted: true, why: 'containers/image bounds the list body only (4 MiB), not the count' },
  },
];

describe('registry signature extension, compared with skopeo', { skip, timeout: 300_000 }, () => {
  before(async () => {
    assertRegistryTools();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-extension-'));
    keys = createTestKeys(tmp);
    registry = await startRegistry({ auth: 'htpasswd' });
    ext = await startSignatureExtension(registry);
    lookaside = path.join(tmp, 'lookaside');
    registriesD = path.join(tmp, 'registries.d');
    mkdirSync(registriesD);
    writeFileSync(path.join(registriesD, 'default.yaml'), `default-docker:\n  lookaside: file://${lookaside}\n`);

    const layout = path.join(tmp, 'layout');
    writeOciImage(layout, { layers: [makeLayer({ 'a.txt': 'extension\n' })] }, 'v1');
    const digest = await push(layout, 'app/signed', keys.a.fingerprint);
    for (const repo of ['app/unsigned', 'app/lookaside', 'app/garbage', 'app/other-type', 'app/not-json', 'app/missing', 'app/huge']) await push(layout, repo);
    for (const repo of ['app/128', 'app/129']) await push(layout, repo, keys.a.fingerprint);
    const [signed] = ext.stored('app/signed', digest);
    assert.ok(signed !== undefined, 'skopeo stored its signature through the extension');

    // A lookaside signature that would be accepted, were the lookaside read.
    const manifest = path.join(tmp, 'manifest.json');
    writeFileSync(manifest, await sk(['inspect', '--raw', '--tls-verify=false', '--creds', registry.creds!, ref('app/lookaside')]));
    const sigDir = path.join(lookaside, `app/lookaside@${digest.replace(':', '=')}`);
    mkdirSync(sigDir, { recursive: true });
    standaloneSign(keys, manifest, `${ext.host}/app/lookaside:v1`, keys.a.fingerprint, path.join(sigDir, 'signature-1'));

    const list = (entries: readonly unknown[]) => JSON.stringify({ signatures: entries });
    ext.set('app/garbage', digest, list([{ ...signed, content: Buffer.from('\x00\xffnot a signature').toString('base64') }]));
    ext.set('app/other-type', digest, list([{ ...signed, type: 'other' }, { ...signed, schemaVersion: 1 }]));
    ext.set('app/not-json', digest, '{"signatures": [');
    ext.set('app/missing', digest, { status: 404 });
    ext.set('app/huge', digest, list([signed, { ...signed, content: Buffer.alloc(4 * 1024 * 1024, 1).toString('base64') }]));
    const [own128] = ext.stored('app/128', digest);
    const [own129] = ext.stored('app/129', digest);
    ext.set('app/128', digest, list(Array.from({ length: 128 }, () => own128)));
    ext.set('app/129', digest, list(Array.from({ length: 129 }, () => own129)));
  });

  after(async () => {
    keys?.stopAgent();
    await ext?.close();
    await registry?.stop();
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it('the registry answers /v2/ with the extension header and keeps the pushed signature', () => {
    assert.equal(ext.stored('app/signed', digests.get('app/signed')!).length, 1);
    assert.ok(readFileSync(path.join(lookaside, `app/lookaside@${digests.get('app/lookaside')!.replace(':', '=')}`, 'signature-1')).length > 100);
  });

  it('OpenImage through bin/layerpipe: the verdict of skopeo copy --policy for each case', async (t) => {
    const proxies = new Map<'a' | 'b', ImageProxy>();
    try {
      for (const key of ['a', 'b'] as const) {
        const proxy = await ImageProxy.spawn({ args: ['--policy', policyFile(keys[key].binary), '--registries.d', registriesD, '--tls-verify=false', '--creds', registry.creds!] });
        await proxy.initialize();
        proxies.set(key, proxy);
      }
      for (const c of CASES) {
        const image = ref(c.repo);
        const ours = await layerpipeVerdict(proxies.get(c.key)!, image);
        const theirs = await skopeoVerdict(policyFile(keys[c.key].binary), image);
        const what = `${c.repo} with key ${c.key}: layerpipe ${ours.reason ?? 'accepted'}; skopeo ${theirs.reason ?? 'accepted'}`;
        t.diagnostic(what);
        assert.equal(ours.accepted, c.accepted, what);
        assert.equal(theirs.accepted, c.skopeo?.accepted ?? c.accepted, what);
        if (c.reason !== undefined) assert.match(ours.reason ?? '', c.reason, what);
      }
      // The server kept serving after every refusal.
      const id = await proxies.get('a')!.openImage(ref('app/signed'));
      assert.equal((await proxies.get('a')!.getManifest(id)).digest, digests.get('app/signed'));
    } finally {
      for (const proxy of proxies.values()) assert.equal(await proxy.shutdown(), 0);
    }
  });

  it('a list redirected to another host is read there without the registry credentials', async () => {
    const digest = digests.get('app/signed')!;
    const elsewhere: http.IncomingHttpHeaders[] = [];
    const server = http.createServer((req, res) => {
      elsewhere.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ signatures: ext.stored('app/signed', digest) }));
    });
    await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
    const proxy = await ImageProxy.spawn({ args: ['--policy', policyFile(keys.a.binary), '--registries.d', registriesD, '--tls-verify=false', '--creds', registry.creds!] });
    try {
      ext.set('app/signed', digest, { status: 307, location: `http://localhost:${(server.address() as AddressInfo).port}/signatures` });
      await proxy.initialize();
      assert.deepEqual(await layerpipeVerdict(proxy, ref('app/signed')), { accepted: true });
      assert.equal(elsewhere.length, 1);
      assert.equal(elsewhere[0]!.authorization, undefined);
    } finally {
      assert.equal(await proxy.shutdown(), 0);
      server.close();
    }
  });

  it('the signature list is read with the registry credentials, from the registry only', () => {
    const seen = ext.extensionRequests().filter((r) => r.method === 'GET' && r.headers['user-agent']?.includes('layerpipe') && r.status !== 307);
    assert.ok(seen.length >= CASES.length, `extension GETs by layerpipe: ${seen.length}`);
    for (const r of seen) assert.match(String(r.headers.authorization), /^Basic /, `${r.path} without the registry's Authorization`);
    assert.ok(seen.some((r) => r.status === 200));
  });
});
