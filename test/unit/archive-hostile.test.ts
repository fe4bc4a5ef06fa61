/**
 * Hostile and broken archives: every one is refused when the image is opened, with an error
 * of the right class and a message naming the problem, and nothing outside the archive is
 * read. Links inside the archive (as docker save writes them) still work.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BlobNotFoundError, ImageNotFoundError, UnsafeContentError, UnsupportedError } from '../../protocol/errors';
import { readAll } from '../../server/image/image';
import { openInProcess, packTar, rejectionOf, skopeo, tempDir, type TarSpec } from '../harness/archive-fixtures';
import { neverAborted } from '../harness/context';
import { dockerSaveEntries, ociLayoutEntries, smallLayers, writeArchive, type HandmadeOci } from '../harness/archive-handmade';
import { makeLayer, randomLayer, sha256, tarOf } from '../harness/oci-builder';

type ErrorClass = new (...args: never[]) => Error;

async function assertRefused(ref: string, cls: ErrorClass, pattern: RegExp): Promise<Error> {
  const err = await rejectionOf(openInProcess(ref));
  assert.ok(err instanceof cls, `${ref}: expected ${cls.name}, got ${err.constructor.name}: ${err.message}`);
  assert.match(err.message, pattern, ref);
  if (process.env.SHOW_ERRORS) console.log(`${cls.name} ${err.constructor.name}: ${err.message}`);
  return err;
}

/** Opens an image and reads every layer through the digest check; returns the layers' bytes. */
async function readLayers(ref: string): Promise<Buffer[]> {
  const image = await openInProcess(ref);
  try {
    const out: Buffer[] = [];
    for (const l of image.layerInfos()) {
      const blob = await image.openBlob({ digest: l.digest, size: l.size, signal: neverAborted() });
      const bytes = await readAll(blob.stream, 1 << 30, 'layer');
      assert.equal(sha256(bytes), l.digest);
      assert.equal(bytes.length, l.size);
      out.push(bytes);
    }
    return out;
  } finally {
    await image.close();
  }
}

describe('hostile oci-archive files', () => {
  let dir: string;
  let oci: HandmadeOci;
  const blob = (digest: string) => `blobs/sha256/${digest.slice(7)}`;
  const without = (name: string) => oci.entries.filter((e) => e.name !== name);

  before(() => {
    dir = tempDir('hostile-oci');
    oci = ociLayoutEntries({ layers: [makeLayer({ 'x.txt': 'x\n' }), randomLayer(64 * 1024)] });
  });

  it('the unspoilt archive opens and serves its layers', async () => {
    const file = await writeArchive(dir, 'good.tar', oci.entries);
    assert.equal((await readLayers(`oci-archive:${file}`)).length, 2);
  });

  for (const name of ['../evil', '/etc/evil', 'blobs/../../evil', 'blobs/sha256/../../../evil']) {
    it(`an entry named ${JSON.stringify(name)} is refused`, async () => {
      const file = await writeArchive(dir, 'dotdot.tar', [...oci.entries, { name, data: 'x' }]);
      await assertRefused(`oci-archive:${file}`, UnsafeContentError, /unsafe name/);
    });
  }

  for (const [type, linkname] of [['symlink', '/etc/passwd'], ['symlink', '../../../../etc/passwd'], ['link', '/etc/passwd'], ['link', '../outside']] as const) {
    it(`index.json as a ${type} to ${linkname} is refused`, async () => {
      const file = await writeArchive(dir, 'link-out.tar', [...without('index.json'), { name: 'index.json', type, linkname }]);
      const err = await assertRefused(`oci-archive:${file}`, UnsafeContentError, /points outside the archive/);
      assert.doesNotMatch(err.message, /root:/);
    });
  }

  it('symbolic and hard links within the archive are followed', async () => {
    const [first, second] = oci.layerDigests as [string, string];
    const firstData = oci.entries.find((e) => e.name === blob(first))!.data!;
    const secondData = oci.entries.find((e) => e.name === blob(second))!.data!;
    const entries: TarSpec[] = [
      { name: 'store/', type: 'directory' },
      { name: 'store/one', data: firstData },
      { name: 'store/two', data: secondData },
      ...without(blob(first)).filter((e) => e.name !== blob(second)),
      { name: blob(first), type: 'symlink', linkname: '../../store/one' },
      { name: blob(second), type: 'link', linkname: 'store/two' },
    ];
    const file = await writeArchive(dir, 'links-in.tar', entries);
    const layers = await readLayers(`oci-archive:${file}`);
    assert.deepEqual(layers.map((b) => b.length), [Buffer.from(firstData).length, Buffer.from(secondData).length]);
  });

  it('a symlink loop is refused', async () => {
    const file = await writeArchive(dir, 'loop.tar', [...without('index.json'), { name: 'index.json', type: 'symlink', linkname: 'a' }, { name: 'a', type: 'symlink', linkname: 'index.json' }]);
    await assertRefused(`oci-archive:${file}`, UnsafeContentError, /too many levels of links/);
  });

  it('two entries with the same name are refused', async () => {
    const file = await writeArchive(dir, 'dup.tar', [...oci.entries, { name: './index.json', data: '{"schemaVersion":2,"manifests":[]}' }]);
    await assertRefused(`oci-archive:${file}`, UnsafeContentError, /more than one entry named "index.json"/);
  });

  it('a truncated archive is refused, whether cut in a body or in a header', async () => {
    const good = await packTar(oci.entries);
    const layerOffset = good.indexOf(Buffer.from(oci.entries.find((e) => e.name === blob(oci.layerDigests[1]!))!.data!));
    for (const [name, cut] of [['body', layerOffset + 1000], ['header', layerOffset - 300]] as const) {
      const file = path.join(dir, `cut-${name}.tar`);
      writeFileSync(file, good.subarray(0, cut));
      await assertRefused(`oci-archive:${file}`, UnsafeContentError, /truncated/);
    }
  });

  it('a file that is not a tar is refused', async () => {
    const file = path.join(dir, 'noise.tar');
    writeFileSync(file, Buffer.alloc(4096, 'not a tar '));
    await assertRefused(`oci-archive:${file}`, UnsafeContentError, /invalid tar archive .*Invalid tar header/);
  });

  it('an index.json larger than any manifest is refused without being read', async () => {
    const huge = Buffer.alloc(5 * 1024 * 1024, ' ');
    const file = await writeArchive(dir, 'huge-index.tar', [...without('index.json'), { name: 'index.json', data: huge }]);
    await assertRefused(`oci-archive:${file}`, UnsupportedError, /index.json .* is 5242880 bytes, more than the 4194304 allowed/);
  });

  it('entry names longer than PATH_MAX are refused', async () => {
    const file = await writeArchive(dir, 'long.tar', [...oci.entries, { name: `${'d/'.repeat(2100)}f`, data: 'x' }]);
    await assertRefused(`oci-archive:${file}`, UnsafeContentError, /longer than 4096/);
  });

  it('zstd-compressed archives are refused by name; a damaged gzip one cleanly', async () => {
    const good = await writeArchive(dir, 'good.tar', oci.entries);
    execFileSync('zstd', ['-q', '-f', good, '-o', `${good}.zst`]);
    await assertRefused(`oci-archive:${good}.zst`, UnsupportedError, /compressed with zstd/);
    const gz = gzipSync(readFileSync(good));
    writeFileSync(path.join(dir, 'cut.tar.gz'), gz.subarray(0, gz.length >> 1));
    await assertRefused(`oci-archive:${dir}/cut.tar.gz`, Error, /truncated|unexpected end/i);
  });

  it('a blob whose bytes were altered fails the digest check when served', async () => {
    const digest = oci.layerDigests[1]!;
    const entries = oci.entries.map((e) => (e.name === blob(digest) ? { ...e, data: Buffer.from(e.data!).fill(7, 100, 200) } : e));
    const file = await writeArchive(dir, 'altered.tar', entries);
    await assert.rejects(readLayers(`oci-archive:${file}`), /sha256|digest/);
  });
});

describe('hostile docker-archive files', () => {
  let dir: string;
  before(() => {
    dir = tempDir('hostile-docker');
  });

  it('the legacy docker save layout (ID/layer.tar, json, VERSION) reads as skopeo reads it', async () => {
    const d = dockerSaveEntries({ layerTars: smallLayers() });
    const file = await writeArchive(dir, 'legacy.tar', d.entries, d.items);
    const image = await openInProcess(`docker-archive:${file}`);
    await image.close();
    assert.equal(image.manifestBytes.toString(), skopeo(['inspect', '--raw', `docker-archive:${file}`]));
    assert.deepEqual(await readLayers(`docker-archive:${file}`), smallLayers());
  });

  it('the same layer twice (docker save links the copy) is served once, listed twice, as by skopeo', async () => {
    const [tar] = smallLayers() as [Buffer];
    const d = dockerSaveEntries({ layerTars: [tar, tar] });
    const second = d.items[0]!.Layers[1]!;
    const entries = d.entries.map((e) => (e.name === second ? { name: second, type: 'symlink' as const, linkname: `../${d.items[0]!.Layers[0]!}` } : e));
    const file = await writeArchive(dir, 'dup-layer.tar', entries, d.items);
    const image = await openInProcess(`docker-archive:${file}`);
    await image.close();
    assert.equal(image.manifestBytes.toString(), skopeo(['inspect', '--raw', `docker-archive:${file}`]));
    assert.equal(image.layerInfos().length, 2);
  });

  it('gzip-compressed layer tars are served decompressed under their diff IDs, with the uncompressed sizes', async () => {
    const tars = smallLayers();
    const d = dockerSaveEntries({ layerTars: tars.map((t) => gzipSync(t)), diffIds: tars.map((t) => sha256(t)) });
    const file = await writeArchive(dir, 'gz-layers.tar', d.entries, d.items);
    const image = await openInProcess(`docker-archive:${file}`);
    await image.close();
    assert.equal(image.manifestBytes.toString(), skopeo(['inspect', '--raw', `docker-archive:${file}`]));
    assert.deepEqual(await readLayers(`docker-archive:${file}`), tars);
  });

  it('a zstd-compressed layer tar is refused by name', async () => {
    const tars = smallLayers();
    const zst = execFileSync('zstd', ['-q', '-c'], { input: tars[0] });
    const d = dockerSaveEntries({ layerTars: [zst, tars[1]!], diffIds: tars.map((t) => sha256(t)) });
    const file = await writeArchive(dir, 'zst-layer.tar', d.entries, d.items);
    await assertRefused(`docker-archive:${file}`, UnsupportedError, /layer .*layer.tar .* compressed with zstd/);
  });

  it('manifest.json naming a missing config or layer is refused, naming the file', async () => {
    const d = dockerSaveEntries({ layerTars: smallLayers() });
    const noConfig = await writeArchive(dir, 'no-config.tar', d.entries.filter((e) => e.name !== d.items[0]!.Config), d.items);
    await assertRefused(`docker-archive:${noConfig}`, BlobNotFoundError, /config ".*\.json" named in manifest.json is missing from archive/);
    const layer = d.items[0]!.Layers[1]!;
    const noLayer = await writeArchive(dir, 'no-layer.tar', d.entries.filter((e) => e.name !== layer), d.items);
    await assertRefused(`docker-archive:${noLayer}`, BlobNotFoundError, new RegExp(`layer tarfile "${layer}" named in manifest.json is missing`));
  });

  it('manifest.json pointing outside the archive is refused', async () => {
    const d = dockerSaveEntries({ layerTars: smallLayers() });
    const items = [{ ...d.items[0]!, Layers: ['../../../../etc/passwd', d.items[0]!.Layers[1]!] }];
    const file = await writeArchive(dir, 'outside.tar', d.entries, items);
    await assertRefused(`docker-archive:${file}`, UnsafeContentError, /names a file outside archive/);
    const items2 = [{ ...d.items[0]!, Config: '/etc/passwd' }];
    const file2 = await writeArchive(dir, 'outside2.tar', d.entries, items2);
    await assertRefused(`docker-archive:${file2}`, UnsafeContentError, /names a file outside archive/);
  });

  it('a layer tar symlinked out of the archive is refused', async () => {
    const d = dockerSaveEntries({ layerTars: smallLayers() });
    const layer = d.items[0]!.Layers[0]!;
    const entries = d.entries.map((e) => (e.name === layer ? { name: layer, type: 'symlink' as const, linkname: '../../../etc/shadow' } : e));
    const file = await writeArchive(dir, 'layer-link-out.tar', entries, d.items);
    await assertRefused(`docker-archive:${file}`, UnsafeContentError, /points outside the archive/);
  });

  it('an enormous manifest.json is refused without being read', async () => {
    const d = dockerSaveEntries({ layerTars: smallLayers() });
    const items = [...d.items, ...Array.from({ length: 20000 }, (_, i) => ({ ...d.items[0]!, RepoTags: [`example.com/filler:${i}`] }))];
    const file = await writeArchive(dir, 'huge-manifest.tar', d.entries, items);
    await assertRefused(`docker-archive:${file}:@0`, UnsupportedError, /manifest.json .* more than the 1048576 allowed/);
  });

  it('one layer tar listed for two different diff IDs is refused', async () => {
    const tars = smallLayers();
    const d = dockerSaveEntries({ layerTars: tars });
    const items = [{ ...d.items[0]!, Layers: [d.items[0]!.Layers[0]!, d.items[0]!.Layers[0]!] }];
    const file = await writeArchive(dir, 'twice.tar', d.entries, items);
    await assertRefused(`docker-archive:${file}`, UnsupportedError, /used for two different DiffID values/);
  });

  it('inconsistent layer counts, a config without rootfs, manifest.json that is not JSON or absent', async () => {
    const d = dockerSaveEntries({ layerTars: smallLayers() });
    const fewer = await writeArchive(dir, 'fewer.tar', d.entries, [{ ...d.items[0]!, Layers: [d.items[0]!.Layers[0]!] }]);
    await assertRefused(`docker-archive:${fewer}`, UnsupportedError, /Inconsistent layer count: 1 in manifest, 2 in config/);
    const noRootfs = d.entries.map((e) => (e.name === d.items[0]!.Config ? { ...e, data: '{"architecture":"amd64","os":"linux"}' } : e));
    await assertRefused(`docker-archive:${await writeArchive(dir, 'no-rootfs.tar', noRootfs, d.items)}`, UnsupportedError, /rootFS is not set/);
    const notJson = [...d.entries, { name: 'manifest.json', data: '[{"Config": ' }];
    await assertRefused(`docker-archive:${await writeArchive(dir, 'not-json.tar', notJson)}`, UnsupportedError, /decoding tar manifest.json/);
    await assertRefused(`docker-archive:${await writeArchive(dir, 'absent.tar', d.entries)}`, UnsupportedError, /has no manifest.json/);
  });

  it('an archive with no image at all is "no such image"', async () => {
    const file = await writeArchive(dir, 'empty.tar', [], []);
    await assertRefused(`docker-archive:${file}`, ImageNotFoundError, /expected 1 item, got 0/);
  });

  it('a truncated docker-archive is refused', async () => {
    const d = dockerSaveEntries({ layerTars: [tarOf({ big: Buffer.alloc(100_000, 1) })] });
    const file = await writeArchive(dir, 'cut.tar', d.entries, d.items);
    truncateSync(file, 50_000);
    await assertRefused(`docker-archive:${file}`, UnsafeContentError, /truncated/);
  });
});
