/**
 * bin/layerpipe's choice of layout (its loader, typed in server/cli/start.ts): the bundle's packs of chunks with their
 * V8 code caches when each cache belongs to its pack and the bundle is no older than the compiled
 * tree; a cache never with another pack; the tree when the bundle is stale or missing. Runs on a
 * copy, in a directory beside it, of the bundle `npm run build` made (skipped without one).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SHARED_PACKS } from '../../server/cli/bundle-packs';
import { BIN, BUILD_ID_PREFIX, bundleIsCurrent, cacheFileOf, cli, ENTRY_CHUNK, INSTALLED, loadBundle, PACK_INDEX, type CliFiles } from '../../server/cli/start';

const START_PACK = SHARED_PACKS[0]!.file;
const built = existsSync(path.join(INSTALLED.bundleDir, PACK_INDEX)) && existsSync(cacheFileOf(path.join(INSTALLED.bundleDir, START_PACK)));

describe('starting the CLI from the bundle or the tree', { skip: built ? false : 'no bundle: `npm run build` makes one' }, () => {
  let dir: string;
  let files: CliFiles;
  let index: string;
  let packs: Record<string, string[]>;
  const TREE_MARK = 'the compiled tree';

  before(() => {
    // Next to dist/bundle: chunks find the compiled tree and the addon by paths relative to their directory.
    dir = mkdtempSync(path.join(INSTALLED.bundleDir, '..', 'bundle-copy-'));
    files = { bundleDir: dir, tree: path.join(dir, 'tree-index.js') };
    cpSync(INSTALLED.bundleDir, files.bundleDir, { recursive: true });
    index = path.join(files.bundleDir, PACK_INDEX);
    packs = JSON.parse(readFileSync(index, 'utf8')) as Record<string, string[]>;
    // A stand-in tree that says who it is.
    writeFileSync(files.tree, `exports.main = () => {}; exports.run = async () => ${JSON.stringify(TREE_MARK)};`);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  const setTimes = (file: string, seconds: number): void => utimesSync(file, seconds, seconds);

  it('runs the bundle, and V8 takes the code cache of every pack', async () => {
    setTimes(files.tree, 1_000_000);
    setTimes(index, 2_000_000);
    assert.equal(bundleIsCurrent(files), true);
    const { cli: bundled, loader } = loadBundle(files, true);
    assert.equal(await bundled.run(['help']), 0);
    for (const chunks of Object.values(packs)) loader.load(chunks[0]!);
    assert.ok(loader.loadedPacks.size > 2, `a bundle in several packs (${loader.loadedPacks.size})`);
    const refused = [...loader.loadedPacks].filter(([, script]) => script.cachedDataRejected !== false).map(([file]) => file);
    assert.deepEqual(refused, []);
  });

  it('reads a pack at the first require of one of its chunks, and runs each chunk once', () => {
    const { loader } = loadBundle(files, true);
    // The entry is in the start pack with the proxy command, which runs only when required.
    assert.deepEqual([...loader.loadedPacks.keys()], [START_PACK]);
    assert.equal(packs[START_PACK]?.includes(ENTRY_CHUNK), true);
    const proxy = packs[START_PACK]?.find((chunk) => chunk.startsWith('proxy-'));
    assert.ok(proxy !== undefined, 'the proxy command is in the start pack');
    assert.equal(loader.loadedChunks.includes(proxy), false);
    assert.equal(loader.load(proxy), loader.load(proxy));
    assert.equal(loader.loadedChunks.filter((chunk) => chunk === proxy).length, 1);
    assert.deepEqual([...loader.loadedPacks.keys()], [START_PACK]);
    // A chunk of another pack reads that pack.
    const [otherPack, otherChunks] = Object.entries(packs).find(([file]) => file !== START_PACK) ?? [];
    loader.load(otherChunks![0]!);
    assert.deepEqual([...loader.loadedPacks.keys()], [START_PACK, otherPack]);
  });

  it("keeps undici's HTTP parser as WebAssembly files beside the packs, not as base64 text in one", () => {
    for (const name of ['llhttp', 'llhttp_simd']) {
      const bytes = require(`undici/lib/llhttp/${name}-wasm.js`) as Buffer;
      assert.ok(readFileSync(path.join(files.bundleDir, `${name}.wasm`)).equals(bytes), `${name}.wasm is undici's parser`);
      const base64 = bytes.subarray(0, 600).toString('base64');
      for (const pack of Object.keys(packs)) assert.equal(readFileSync(path.join(files.bundleDir, pack), 'latin1').includes(base64), false, `${pack} holds ${name}'s base64`);
    }
  });

  it('compiles a pack without its cache when the cache was made from another pack', () => {
    const cacheFile = cacheFileOf(path.join(files.bundleDir, START_PACK));
    const cache = readFileSync(cacheFile);
    const other = Buffer.from(cache);
    const digit = BUILD_ID_PREFIX.length;
    other[digit] = other[digit] === 0x30 ? 0x31 : 0x30; // another build id
    writeFileSync(cacheFile, other);
    try {
      // undefined: no cache was given to V8 at all (a rejected one would read true).
      assert.equal(loadBundle(files, true).loader.loadedPacks.get(START_PACK)?.cachedDataRejected, undefined);
    } finally {
      writeFileSync(cacheFile, cache);
    }
  });

  it('runs the tree when the bundle is older than it, or missing', async () => {
    setTimes(index, 1_000_000);
    setTimes(files.tree, 2_000_000);
    assert.equal(bundleIsCurrent(files), false);
    assert.equal(await cli(files).run([]), TREE_MARK);
    assert.equal(bundleIsCurrent({ ...files, bundleDir: path.join(dir, 'missing') }), false);
  });
});

describe('bin/layerpipe in a checkout that was never built', () => {
  it('says to run the build, exit status 1', () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-unbuilt-'));
    try {
      mkdirSync(path.join(root, 'bin'));
      copyFileSync(BIN, path.join(root, 'bin', 'layerpipe'));
      const run = spawnSync(process.execPath, [path.join(root, 'bin', 'layerpipe'), '--version'], { encoding: 'utf8' });
      assert.equal(run.status, 1, run.stderr);
      assert.equal(run.stderr, `layerpipe: not built yet: run \`npm run build\` in ${root}\n`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

