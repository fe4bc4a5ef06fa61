/**
 * bin/layerpipe's choice of layout (server/cli/start.ts): the bundle with its V8 code cache when
 * both belong together and the bundle is no older than the compiled tree; the cache never with
 * another bundle; the tree when the bundle is stale or missing. Runs on copies in a temp dir of
 * the bundle `npm run build` made (skipped without one).
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILD_ID_PREFIX, bundleIsCurrent, cli, INSTALLED, loadBundle, type CliFiles } from '../../server/cli/start';

const built = existsSync(INSTALLED.bundle) && existsSync(INSTALLED.codeCache);

describe('starting the CLI from the bundle or the tree', { skip: built ? false : 'no bundle: `npm run build` makes one' }, () => {
  let dir: string;
  let files: CliFiles;
  const TREE_MARK = 'the compiled tree';

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-start-'));
    files = { bundle: path.join(dir, 'layerpipe.js'), codeCache: path.join(dir, 'layerpipe.cache'), tree: path.join(dir, 'index.js') };
    copyFileSync(INSTALLED.bundle, files.bundle);
    copyFileSync(INSTALLED.codeCache, files.codeCache);
    // A stand-in tree that says who it is.
    writeFileSync(files.tree, `exports.main = () => {}; exports.run = async () => ${JSON.stringify(TREE_MARK)};`);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  const setTimes = (file: string, seconds: number): void => utimesSync(file, seconds, seconds);

  it('runs the bundle, and V8 takes its code cache', async () => {
    setTimes(files.tree, 1_000_000);
    setTimes(files.bundle, 2_000_000);
    assert.equal(bundleIsCurrent(files), true);
    const loaded = loadBundle(files, true);
    assert.equal(loaded.script.cachedDataRejected, false);
    assert.equal(await loaded.cli.run(['help']), 0);
  });

  it('compiles without the cache when it was made from another bundle', () => {
    const cache = readFileSync(files.codeCache);
    const other = Buffer.from(cache);
    const digit = BUILD_ID_PREFIX.length;
    other[digit] = other[digit] === 0x30 ? 0x31 : 0x30; // another build id
    writeFileSync(files.codeCache, other);
    try {
      // undefined: no cache was given to V8 at all (a rejected one would read true).
      assert.equal(loadBundle(files, true).script.cachedDataRejected, undefined);
    } finally {
      writeFileSync(files.codeCache, cache);
    }
  });

  it('runs the tree when the bundle is older than it, or missing', async () => {
    setTimes(files.bundle, 1_000_000);
    setTimes(files.tree, 2_000_000);
    assert.equal(bundleIsCurrent(files), false);
    assert.equal(await cli(files).run([]), TREE_MARK);
    assert.equal(bundleIsCurrent({ ...files, bundle: path.join(dir, 'missing.js') }), false);
  });
});
