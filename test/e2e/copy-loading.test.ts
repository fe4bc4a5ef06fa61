/**
 * What `layerpipe copy docker://… oci:…` loads: the signature check before a copy once loaded
 * YAML (registries.d), undici's whole index (lookaside) and tar-stream (archives) even where no
 * registries.d exists and the lookaside is a local directory, a quarter of a second of a small
 * copy. bin/layerpipe runs as shipped (the bundle when current), with a preload that records at
 * exit which files were required.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { makeLayer } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { emptyAuthFilePath, pushImage } from '../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../harness/registry-tools';

const execFileAsync = promisify(execFile);
const skip = registrySuiteSkip();
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'layerpipe');

describe('what layerpipe copy loads', { skip, timeout: 120_000 }, () => {
  let registry: RunningRegistry;
  let ref: string;
  let dir: string;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    ({ ref } = await pushImage(registry, 'loading/copy:v1', { layers: [makeLayer({ 'etc/hostname': 'lazy\n' })] }));
    dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-copy-loading-'));
  });

  after(async () => {
    await registry?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('a docker:// to oci: copy with no registries.d loads no YAML, undici index or tar-stream', async () => {
    const preload = path.join(dir, 'record-loaded.js');
    const out = path.join(dir, 'loaded.json');
    writeFileSync(preload, `'use strict';
process.on('exit', () => require('node:fs').writeFileSync(process.env.LAYERPIPE_TEST_LOADED, JSON.stringify(Object.keys(require.cache))));
`);
    const registriesD = path.join(dir, 'no-registries.d');
    const dest = path.join(dir, 'layout');
    await execFileAsync(BIN, ['copy', '--insecure-policy', '--quiet', '--src-tls-verify=false', '--registries.d', registriesD, ref, `oci:${dest}:v1`], {
      env: { ...process.env, NODE_OPTIONS: `--require ${preload}`, LAYERPIPE_TEST_LOADED: out, REGISTRY_AUTH_FILE: emptyAuthFilePath() },
    });
    assert.ok(existsSync(path.join(dest, 'index.json')), 'the copy was published');
    const files = JSON.parse(readFileSync(out, 'utf8')) as string[];
    assert.deepEqual(files.filter((f) => /node_modules[\\/](yaml|tar-stream|openpgp)[\\/]|undici[\\/](index\.js|lib[\\/]web[\\/])/.test(f)), []);
  });
});
