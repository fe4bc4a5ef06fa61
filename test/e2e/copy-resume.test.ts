/**
 * `layerpipe copy` when things go wrong or were done before: a copy killed mid-transfer is
 * continued by the next run with a ranged read (bytes counted at the registry), blobs already
 * in the destination are not fetched again (but a corrupt partial or final file is), a
 * corrupted source blob fails the copy and leaves every destination naming its previous image,
 * and progress is shown as bars on a terminal, as lines elsewhere, and not at all with --quiet.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { match, startFaultProxy, type FaultProxy } from '../harness/fault-proxy';
import { makeLayer, randomLayer, writeImageBlobs, writeIndexBlob, writeLayoutIndex, writeOciImage, type WrittenManifest } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { pushImage, type PushedSingleImage } from '../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../harness/registry-tools';
import { createTestKeys } from '../harness/signing';
import { BIN, layerpipeCopy, proxyReadBack, runSkopeo, skopeoRawDigest, spawnLayerpipeCopy } from './copy-tools';

const skip = registrySuiteSkip();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-copy-resume-'));
const BIG = randomLayer(12 * 1024 * 1024, 'big.bin');
const SMALL = makeLayer({ 'small.txt': 'small\n' });

after(() => rmSync(tmp, { recursive: true, force: true }));

async function waitFor(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const sizeOf = (file: string): number => (existsSync(file) ? statSync(file).size : 0);

describe('an interrupted copy from a registry', { skip }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let pushed: PushedSingleImage;
  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    pushed = await pushImage(registry, 'resume/app:v1', { layers: [SMALL, BIG] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy.close();
    await registry.stop();
  });

  it('continues after SIGKILL with a ranged read, and fetches nothing again when run once more', async () => {
    const dest = path.join(tmp, 'resumed');
    const source = `docker://${proxy.host}/resume/app:v1`;
    const partial = path.join(dest, 'blobs', 'sha256', `${BIG.digest.slice(7)}.layerpipe-partial`);
    proxy.addRule({ match: match.blobGet(BIG.digest), action: { kind: 'stall', afterBytes: 5 * 1024 * 1024 } });
    const child = spawnLayerpipeCopy(['--src-tls-verify=false', '--quiet', source, `oci:${dest}:v1`]);
    await waitFor('half the big blob on disk', () => sizeOf(partial) >= 4 * 1024 * 1024);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const kept = sizeOf(partial);
    assert.ok(kept > 0 && kept < BIG.compressed.length, `a partial blob of ${kept} bytes is left`);
    assert.equal(existsSync(path.join(dest, 'index.json')), false, 'nothing is published by a killed copy');

    proxy.clearRules();
    const before = proxy.requests.length;
    const second = await layerpipeCopy(['--src-tls-verify=false', '--debug', source, `oci:${dest}:v1`]);
    assert.equal(second.status, 0, second.stderr);
    const bigGets = proxy.requests.slice(before).filter((r) => match.blobGet(BIG.digest)(r));
    assert.equal(bigGets.length, 1);
    assert.equal(bigGets[0]!.range, `bytes=${kept}-`, 'the rest is asked for with a Range');
    assert.equal(bigGets[0]!.bodyBytes, BIG.compressed.length - kept, 'only the missing bytes cross the wire');
    assert.equal(proxy.requests.slice(before).filter((r) => match.blobGet(SMALL.digest)(r)).length, 0, 'a blob already in place is not fetched');
    assert.match(second.stderr, new RegExp(`Copying blob ${BIG.digest} \\(resuming at byte ${kept}\\)`));
    assert.equal(existsSync(partial), false);
    assert.equal(await skopeoRawDigest(`oci:${dest}:v1`), pushed.manifestDigest);
    assert.equal((await proxyReadBack(`oci:${dest}:v1`)).digest, pushed.manifestDigest);

    const third = proxy.requests.length;
    const again = await layerpipeCopy(['--src-tls-verify=false', '--debug', source, `oci:${dest}:v1`]);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(proxy.requests.slice(third).filter((r) => match.blobGet()(r)).length, 0, 'every blob is present: none is fetched');
    assert.match(again.stderr, /3 blobs, 3 already present, 0 blob bytes fetched/);
    assert.match(again.stderr, new RegExp(`Copying blob ${BIG.digest} skipped: already exists`));
  });
});

describe('a corrupted source blob', () => {
  const good = path.join(tmp, 'good');
  const bad = path.join(tmp, 'bad');
  let goodManifest: WrittenManifest;
  let badLayer: ReturnType<typeof makeLayer>;
  before(() => {
    goodManifest = writeOciImage(good, { layers: [makeLayer({ 'a.txt': 'good\n' })] }, 'v1');
    badLayer = randomLayer(256 * 1024, 'bad.bin');
    writeOciImage(bad, { layers: [makeLayer({ 'a.txt': 'good\n' }), badLayer] }, 'v1');
    const file = path.join(bad, 'blobs', 'sha256', badLayer.digest.slice(7));
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(file, bytes);
  });

  for (const dest of ['oci', 'dir', 'oci-archive'] as const) {
    it(`fails the copy and leaves ${dest}: naming its previous image`, async () => {
      const where = path.join(tmp, `kept-${dest}`);
      const name = dest === 'oci' ? `oci:${where}:v1` : dest === 'dir' ? `dir:${where}` : `oci-archive:${where}.tar:v1`;
      const first = await layerpipeCopy(['--quiet', `oci:${good}:v1`, name]);
      assert.equal(first.status, 0, first.stderr);
      const published = dest === 'oci' ? path.join(where, 'index.json') : dest === 'dir' ? path.join(where, 'manifest.json') : `${where}.tar`;
      const before = readFileSync(published);
      const failed = await layerpipeCopy(['--quiet', `oci:${bad}:v1`, name]);
      assert.equal(failed.status, 1);
      assert.match(failed.stderr, new RegExp(`blob ${badLayer.digest}: corrupted blob`));
      assert.deepEqual(readFileSync(published), before, 'the published file is untouched');
      assert.equal(await skopeoRawDigest(name), goodManifest.digest);
      const hex = badLayer.digest.slice(7);
      const files = dest === 'dir' ? readdirSync(where) : existsSync(path.join(where, 'blobs', 'sha256')) ? readdirSync(path.join(where, 'blobs', 'sha256')) : [];
      assert.deepEqual(files.filter((f) => f.startsWith(hex)), [], 'neither the bad blob nor its partial file is kept');
    });
  }
});

describe('wrong bytes already in the destination', () => {
  it('a corrupt partial file is fetched again from its start, a corrupt blob at its final name replaced', async () => {
    const source = path.join(tmp, 'wrong-source');
    const dest = path.join(tmp, 'wrong-dest');
    const layers = [randomLayer(3 * 1024 * 1024, 'one.bin'), randomLayer(2 * 1024 * 1024, 'two.bin')];
    const written = writeOciImage(source, { layers }, 'v1');
    const blobFile = (digest: string): string => path.join(dest, 'blobs', 'sha256', digest.slice(7));
    // The first layer's first half, one byte flipped, left as an interrupted copy's partial file.
    const half = Buffer.from(layers[0]!.compressed.subarray(0, layers[0]!.compressed.length >> 1));
    half[100] ^= 0xff;
    const first = await layerpipeCopy(['--quiet', `oci:${source}:v1`, `oci:${dest}:v1`]);
    assert.equal(first.status, 0, first.stderr);
    rmSync(blobFile(layers[0]!.digest));
    writeFileSync(`${blobFile(layers[0]!.digest)}.layerpipe-partial`, half);
    // The second layer's file at its final name: the right size, the wrong bytes.
    const wrong = Buffer.from(layers[1]!.compressed);
    wrong[wrong.length - 1] ^= 0xff;
    writeFileSync(blobFile(layers[1]!.digest), wrong);

    const again = await layerpipeCopy(['--debug', `oci:${source}:v1`, `oci:${dest}:v1`]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`Copying blob ${layers[0]!.digest} \\(resuming at byte ${half.length}\\)`));
    for (const layer of layers) assert.deepEqual(readFileSync(blobFile(layer.digest)), layer.compressed, `${layer.digest} holds the blob`);
    assert.equal(existsSync(`${blobFile(layers[0]!.digest)}.layerpipe-partial`), false);
    assert.equal(await skopeoRawDigest(`oci:${dest}:v1`), written.digest);
  });
});

describe('choosing an instance of a list', () => {
  const layout = path.join(tmp, 'multi');
  let amd64: WrittenManifest;
  let arm64: WrittenManifest;
  let list: WrittenManifest;
  before(() => {
    amd64 = writeImageBlobs(layout, { layers: [makeLayer({ 'x.txt': 'amd64\n' })], architecture: 'amd64' });
    arm64 = writeImageBlobs(layout, { layers: [makeLayer({ 'x.txt': 'arm64\n' })], architecture: 'arm64', variant: 'v8' });
    list = writeIndexBlob(layout, [
      { manifest: amd64, platform: { os: 'linux', architecture: 'amd64' } },
      { manifest: arm64, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    writeLayoutIndex(layout, [{ manifest: list, refName: 'v1' }]);
  });

  it('--override-arch writes that instance; --all writes the list and every instance', async () => {
    const one = path.join(tmp, 'arm-only');
    const chosen = await layerpipeCopy(['--quiet', '--override-arch', 'arm64', `oci:${layout}:v1`, `oci:${one}:v1`]);
    assert.equal(chosen.status, 0, chosen.stderr);
    assert.equal(await skopeoRawDigest(`oci:${one}:v1`), arm64.digest);
    const all = path.join(tmp, 'all');
    const everything = await layerpipeCopy(['--quiet', '--all', `oci:${layout}:v1`, `dir:${all}`]);
    assert.equal(everything.status, 0, everything.stderr);
    assert.equal(await skopeoRawDigest(`dir:${all}`), list.digest);
    for (const m of [amd64, arm64]) assert.ok(existsSync(path.join(all, `${m.digest.slice(7)}.manifest.json`)));
    // skopeo's short spellings: -a (--all), -q (--quiet).
    const short = await layerpipeCopy(['-q', '-a', `oci:${layout}:v1`, `dir:${path.join(tmp, 'all-short')}`]);
    assert.equal(short.status, 0, short.stderr);
    assert.equal(short.stderr + short.stdout, '');
    assert.equal(await skopeoRawDigest(`dir:${path.join(tmp, 'all-short')}`), list.digest);
  });
});

describe('progress', () => {
  const layout = path.join(tmp, 'progress-src');
  before(() => writeOciImage(layout, { layers: [makeLayer({ 'p.txt': 'p\n' }), randomLayer(64 * 1024)] }, 'v1'));

  it('draws bars and a total on a terminal (script -qc)', () => {
    const dest = path.join(tmp, 'progress-tty');
    const out = execFileSync('script', ['-qec', `${BIN} copy --insecure-policy oci:${layout}:v1 oci:${dest}:v1`, '/dev/null'], { encoding: 'utf8' });
    assert.match(out, /\x1b\[\d+A/, 'lines are redrawn in place');
    assert.match(out, /total 3\/3/);
    assert.match(out, /\[=+\]/);
    assert.match(out, /Writing manifest to image destination/);
  });

  it('prints one line per event off a terminal, and nothing with --quiet', async () => {
    const plain = await layerpipeCopy([`oci:${layout}:v1`, `oci:${path.join(tmp, 'progress-plain')}:v1`]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /\x1b\[/);
    assert.equal(plain.stderr.split('\n').filter((l) => / done \(\d+ bytes fetched\)$/.test(l)).length, 3);
    assert.match(plain.stderr, /^Copying config sha256:[0-9a-f]{64}$/m);
    const quiet = await layerpipeCopy(['--quiet', `oci:${layout}:v1`, `oci:${path.join(tmp, 'progress-quiet')}:v1`]);
    assert.equal(quiet.status, 0);
    assert.equal(quiet.stderr + quiet.stdout, '');
  });
});

describe('the signature policy', () => {
  it('judges the source as skopeo copy does: a rejected image is not copied at all', async () => {
    const policy = path.join(tmp, 'reject.json');
    writeFileSync(policy, '{"default":[{"type":"reject"}]}');
    const layout = path.join(tmp, 'policy-src');
    writeOciImage(layout, { layers: [makeLayer({ 'r.txt': 'r\n' })] }, 'v1');
    const dest = path.join(tmp, 'policy-dest');
    const refused = await layerpipeCopy(['--policy', policy, `oci:${layout}:v1`, `oci:${dest}:v1`]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /is rejected by policy/);
    assert.equal(existsSync(dest), false, 'nothing is written for a rejected image');
  });
});

describe('a signed source', () => {
  it('is refused (copy writes no signatures) unless --remove-signatures is given', async () => {
    const keys = createTestKeys(path.join(tmp, 'keys'));
    try {
      const signed = path.join(tmp, 'signed');
      execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', '--sign-by', keys.a.fingerprint, '--sign-identity', 'example.com/app:v1', `oci:${path.join(__dirname, '..', '..', '..', 'examples', 'sample-image')}:latest`, `dir:${signed}`], { env: keys.env, stdio: 'ignore' });
      const dest = path.join(tmp, 'signed-copy');
      const refused = await layerpipeCopy(['--quiet', `dir:${signed}`, `oci:${dest}:v1`]);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /has 1 signature\(s\).*--remove-signatures/);
      assert.equal(existsSync(path.join(dest, 'index.json')), false);
      const copied = await layerpipeCopy(['--quiet', '--remove-signatures', `dir:${signed}`, `oci:${dest}:v1`]);
      assert.equal(copied.status, 0, copied.stderr);
      assert.equal(await skopeoRawDigest(`oci:${dest}:v1`), await skopeoRawDigest(`dir:${signed}`));
    } finally {
      keys.stopAgent();
    }
  });
});

describe('an oci: layout holding several images', () => {
  it('ends with the index.json skopeo writes for the same copies (refs added, moved, and none)', async () => {
    const one = path.join(tmp, 'several-1');
    const two = path.join(tmp, 'several-2');
    writeOciImage(one, { layers: [makeLayer({ 'one.txt': '1\n' })] }, 'v1');
    writeOciImage(two, { layers: [makeLayer({ 'two.txt': '2\n' })] }, 'v1');
    const steps: [string, string][] = [[one, ':a'], [two, ':b'], [two, ':a'], [one, '']];
    const ours = path.join(tmp, 'several-layerpipe');
    const theirs = path.join(tmp, 'several-skopeo');
    for (const [src, ref] of steps) {
      const copied = await layerpipeCopy(['--quiet', `oci:${src}:v1`, `oci:${ours}${ref}`]);
      assert.equal(copied.status, 0, copied.stderr);
      await runSkopeo(['--insecure-policy', 'copy', '-q', `oci:${src}:v1`, `oci:${theirs}${ref}`]);
    }
    assert.equal(readFileSync(path.join(ours, 'index.json'), 'utf8'), readFileSync(path.join(theirs, 'index.json'), 'utf8'));
    assert.equal(readFileSync(path.join(ours, 'oci-layout'), 'utf8'), readFileSync(path.join(theirs, 'oci-layout'), 'utf8'));
  });
});
