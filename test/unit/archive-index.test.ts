/**
 * The tar index under oci-archive: and docker-archive:: archives written by GNU tar in its
 * gnu, pax and ustar formats (long names, links, empty and block-sized files) are indexed so
 * that every file reads back byte for byte as a range of the archive; only header blocks are
 * read; gzip archives are spilled to an unlinked file that leaves nothing behind.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, linkSync, symlinkSync, appendFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { readAll } from '../../server/image/image';
import { FileByteSource } from '../../server/transports/archive/byte-sources';
import { TarArchive } from '../../server/transports/archive/tar-archive';
import { indexTar, type TarByteSource } from '../../server/transports/archive/tar-index';
import { run, tempDir } from '../harness/archive-fixtures';
import { neverAborted, testContext } from '../harness/context';

const LONG = `${'long-directory-name-'.repeat(8)}/${'very-long-file-name-'.repeat(10)}.bin`;
/** Longer than ustar's 100-byte name field, but splittable at a slash into its 155-byte prefix field. */
const PREFIXED = `${'split-directory-'.repeat(6)}/${'n'.repeat(95)}.bin`;

/** Files to pack, relative path -> content. */
function treeFiles(): Record<string, Buffer> {
  return {
    'empty': Buffer.alloc(0),
    'block': randomBytes(512),
    'odd': randomBytes(1000),
    'dir/nested/file.txt': Buffer.from('nested\n'),
    [LONG]: randomBytes(3000),
    [PREFIXED]: randomBytes(700),
    'big.bin': randomBytes(3 * 1024 * 1024 + 17),
  };
}

function writeTree(root: string): Record<string, Buffer> {
  const files = treeFiles();
  for (const [rel, data] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), data);
  }
  symlinkSync('nested/file.txt', path.join(root, 'dir', 'sym'));
  linkSync(path.join(root, 'odd'), path.join(root, 'hard'));
  return files;
}

/** Counts the bytes a source hands out, to show bodies are skipped rather than read. */
class CountingSource implements TarByteSource {
  bytesRead = 0;
  constructor(private readonly inner: TarByteSource) {}
  async read(length: number): Promise<Buffer> {
    const b = await this.inner.read(length);
    this.bytesRead += b.length;
    return b;
  }
  skip(length: number): Promise<boolean> {
    return this.inner.skip(length);
  }
}

describe('tar index', () => {
  let work: string;
  let tree: string;
  let files: Record<string, Buffer>;
  before(() => {
    work = tempDir('tar-index');
    tree = path.join(work, 'tree');
    files = writeTree(tree);
  });

  /** Every file of `expected` reads back (by name, ./name and as a stream); links resolve. */
  async function assertArchiveHolds(file: string, expected: Record<string, Buffer>): Promise<TarArchive> {
    const archive = await TarArchive.open(file, testContext({ tmpDir: work }), { maxLinkHops: 8 }, neverAborted());
    try {
      for (const [rel, data] of Object.entries(expected)) {
        assert.deepEqual(await archive.read(rel, 1 << 30), data, rel);
        assert.deepEqual(await archive.read(`./${rel}`, 1 << 30), data, rel);
        assert.deepEqual(await readAll((await archive.open(rel)).stream, 1 << 30, rel), data, rel);
      }
      assert.deepEqual(await archive.read('dir/sym', 100), files['dir/nested/file.txt']);
      assert.deepEqual(await archive.read('hard', 2000), files.odd);
      assert.equal(archive.index.get('dir')?.type, 'directory');
    } finally {
      await archive.close();
    }
    return archive;
  }

  for (const format of ['gnu', 'pax', 'posix']) {
    it(`GNU tar --format=${format}: every file reads back from its byte range, links resolve`, async () => {
      const file = path.join(work, `${format}.tar`);
      run('tar', [`--format=${format}`, '-cf', file, '-C', tree, '.']);
      await assertArchiveHolds(file, files);
    });
  }

  it('GNU tar --format=ustar: refuses the unsplittable long name, and the rest (prefix-split name too) reads back', async () => {
    const file = path.join(work, 'ustar.tar');
    // ustar has no long-name extension: a path must split at a slash into prefix (<= 155
    // bytes) and name (<= 100). LONG's directory cannot, so GNU tar leaves that subtree out,
    // says so and exits 2 — but still writes every other entry.
    const tar = spawnSync('tar', ['--format=ustar', '-cf', file, '-C', tree, '.'], { encoding: 'utf8' });
    assert.equal(tar.status, 2, tar.stderr);
    const refused = tar.stderr.split('\n').filter((line) => line.includes('not dumped'));
    assert.equal(refused.length, 1, tar.stderr);
    assert.match(refused[0]!, /long-directory-name-.*file name is too long \(cannot be split\); not dumped/);

    const stored = Object.fromEntries(Object.entries(files).filter(([rel]) => rel !== LONG));
    const archive = await assertArchiveHolds(file, stored);
    // The split name really went through the prefix field: its name field alone is a suffix.
    const raw = readFileSync(file);
    const prefixedName = Buffer.from(PREFIXED.slice(PREFIXED.indexOf('/') + 1));
    assert.ok(raw.indexOf(prefixedName) >= 0 && raw.indexOf(Buffer.from(PREFIXED)) < 0, 'PREFIXED is stored split, not whole');
    assert.equal(archive.index.get(LONG), undefined);
    assert.equal(archive.index.get(LONG.slice(0, LONG.indexOf('/'))), undefined, 'the refused directory is absent too');
    assert.equal(archive.index.get(PREFIXED.slice(0, PREFIXED.indexOf('/')))?.type, 'directory');
  });

  it('reads only header blocks: a 3 MiB body is skipped', async () => {
    const file = path.join(work, 'count.tar');
    run('tar', ['--format=pax', '-cf', file, '-C', tree, '.']);
    const handle = await open(file, 'r');
    try {
      const source = new CountingSource(new FileByteSource(handle, (await handle.stat()).size));
      const index = await indexTar(source, file);
      assert.ok(index.get('big.bin') !== undefined);
      assert.ok(source.bytesRead < 200 * 1024, `read ${source.bytesRead} bytes to index`);
    } finally {
      await handle.close();
    }
  });

  it('stops at the end-of-archive marker (trailing data ignored, as Go does) and accepts a missing marker', async () => {
    const file = path.join(work, 'trailing.tar');
    run('tar', ['-cf', file, '-C', tree, 'odd', 'block']);
    appendFileSync(file, Buffer.alloc(4096, 'garbage after the end '));
    const a = await TarArchive.open(file, testContext({ tmpDir: work }), { maxLinkHops: 1 }, neverAborted());
    assert.deepEqual(await a.read('odd', 2000), files.odd);
    await a.close();

    const whole = readFileSync(path.join(work, 'trailing.tar'));
    const blockBody = whole.indexOf(files.block!);
    const noMarker = path.join(work, 'no-marker.tar');
    writeFileSync(noMarker, whole.subarray(0, blockBody + 512));
    const b = await TarArchive.open(noMarker, testContext({ tmpDir: work }), { maxLinkHops: 1 }, neverAborted());
    assert.deepEqual(await b.read('block', 512), files.block);
    await b.close();
  });

  it('a gzip archive is spilled to an unlinked file under tmpDir and served from it', async () => {
    const file = path.join(work, 'tree.tar.gz');
    run('tar', ['-czf', file, '-C', tree, '.']);
    const tmp = path.join(work, 'spill-tmp');
    mkdirSync(tmp);
    const archive = await TarArchive.open(file, testContext({ tmpDir: tmp }), { maxLinkHops: 8 }, neverAborted());
    try {
      assert.equal(archive.compression, 'gzip');
      assert.deepEqual(readdirSync(tmp), [], 'the spill file is unlinked at once');
      const reads = Object.entries(files).map(async ([rel, data]) => {
        assert.deepEqual(await readAll((await archive.open(rel)).stream, 1 << 30, rel), data, rel);
      });
      await Promise.all(reads);
    } finally {
      await archive.close();
    }
    assert.throws(() => archive.entry('odd'), /closed/);
  });

  it('a gzip archive with no usable tmpDir fails with a message naming it', async () => {
    const file = path.join(work, 'tree2.tar.gz');
    run('tar', ['-czf', file, '-C', tree, 'odd']);
    await assert.rejects(TarArchive.open(file, testContext({ tmpDir: path.join(work, 'no-such-dir') }), { maxLinkHops: 1 }, neverAborted()), /creating a file in .*no-such-dir to decompress archive/);
  });
});
