/**
 * What a proxy loads for its first requests (issue 13's cold start): nothing the request does not
 * need. The real proxy process runs, from the compiled tree and from the bundle (when `npm run
 * build` made one), with a preload that records at exit which built-in modules Node loaded and
 * which files were required. After Initialize alone no registry, JSON-RPC or signature code is
 * there; after the first manifest from a plain-HTTP registry, no credential helper, OpenPGP,
 * YAML or fetch/WebSocket half of undici (and, in the bundle, no HTTP/2 nor node:fs/promises).
 */
import { strict as assert } from 'node:assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../../clients/typescript';
import { BIN, bundleIsCurrent, INSTALLED } from '../../../server/cli/start';
import { makeLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { emptyAuthFilePath, pushImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const DIST = path.resolve(__dirname, '..', '..', '..');

interface Loaded {
  readonly builtins: readonly string[];
  readonly files: readonly string[];
  /** node:fs stats and Buffer reads, each with its first argument. */
  readonly fsCalls: readonly string[];
}

/** Writes the preload and one launcher per layout into `dir`. */
function writeLaunchers(dir: string): { preload: string; layouts: Record<string, string> } {
  const preload = path.join(dir, 'record-loaded.js');
  writeFileSync(preload, `'use strict';
const fs = require('node:fs');
// node:fs calls whose first run costs a start: its stats, and its reads into a Buffer.
const fsCalls = [];
for (const name of ['statSync', 'lstatSync', 'fstatSync', 'existsSync', 'readFileSync']) {
  const real = fs[name];
  fs[name] = function (...args) {
    const result = real.apply(this, args);
    if (name !== 'readFileSync' || Buffer.isBuffer(result)) fsCalls.push(name + ' ' + String(args[0]));
    return result;
  };
}
const { writeFileSync } = fs;
process.on('exit', () => {
  const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
  writeFileSync(process.env.LAYERPIPE_TEST_LOADED, JSON.stringify({ builtins, files: Object.keys(require.cache), fsCalls }));
});
`);
  const launcher = (name: string, body: string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/usr/bin/env node\n'use strict';\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  };
  const layouts: Record<string, string> = {
    tree: launcher('tree', `require(${JSON.stringify(path.join(DIST, 'server', 'cli', 'index.js'))}).main(process.argv.slice(2));`),
  };
  if (bundleIsCurrent(INSTALLED)) {
    layouts.bundle = BIN; // it starts from the bundle when that is current
  }
  return { preload, layouts };
}

describe('what a cold proxy loads', { skip, timeout: 120_000 }, () => {
  let registry: RunningRegistry;
  let ref: string;
  let dir: string;
  let preload: string;
  let layouts: Record<string, string>;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    ({ ref } = await pushImage(registry, 'loading/img:v1', { layers: [makeLayer({ 'etc/hostname': 'lazy\n' })] }));
    dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-loading-'));
    ({ preload, layouts } = writeLaunchers(dir));
  });

  after(async () => {
    await registry?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function loadedBy(command: string, work: (proxy: ImageProxy) => Promise<void>): Promise<Loaded> {
    const out = path.join(dir, `loaded-${Date.now()}-${Math.random()}.json`);
    const proxy = await ImageProxy.spawn({
      command,
      args: ['--insecure-policy', '--tls-verify=false'],
      env: { ...process.env, NODE_OPTIONS: `--require ${preload}`, LAYERPIPE_TEST_LOADED: out, REGISTRY_AUTH_FILE: emptyAuthFilePath() },
    });
    await proxy.initialize();
    await work(proxy);
    assert.equal(await proxy.shutdown(), 0, proxy.stderr);
    return JSON.parse(readFileSync(out, 'utf8')) as Loaded;
  }

  const filesMatching = (loaded: Loaded, pattern: RegExp): string[] => loaded.files.filter((f) => pattern.test(f));
  const builtinsAmong = (loaded: Loaded, names: readonly string[]): string[] => names.filter((n) => loaded.builtins.includes(n));

  for (const layout of ['tree', 'bundle']) {
    it(`${layout}: Initialize loads no registry, JSON-RPC, signature or child-process code`, async (t) => {
      const command = layouts[layout];
      if (command === undefined) return t.skip('no current bundle: `npm run build` makes one');
      const loaded = await loadedBy(command, async () => undefined);
      assert.deepEqual(builtinsAmong(loaded, ['http', 'http2', 'tls', 'crypto', 'child_process', 'zlib']), []);
      // Loaded only where used: a terminal check for a bad fd, sockets over pipe fds, keyring files,
      // a home directory without $HOME (config/home.ts).
      assert.deepEqual(builtinsAmong(loaded, ['tty', 'net', 'fs/promises', 'readline', 'os']), []);
      // No AbortController: a request's lifetime makes one only when its work asks for the signal
      // (OpenImage does, Initialize does not), the FIFO directory only at the first FIFO.
      assert.deepEqual(builtinsAmong(loaded, ['internal/abort_controller']), []);
      // Nor node:module, which loads the ES-module loader (bin/layerpipe's loader requires with its own require).
      assert.deepEqual(builtinsAmong(loaded, ['module', 'internal/modules/esm/loader']), []);
      // No V8 flag is set at start-up (node:v8 unloaded): V8 then refuses the code caches of all that
      // loads later. The memory guard sets its flags once OpenImage has loaded the open path, llhttp-tiers.ts at the first connection.
      assert.deepEqual(builtinsAmong(loaded, ['v8']), []);
      // node:stream loads once bytes move (server/node-stream.ts, transfer/sinks/fifo-sink.ts): ~3-5 ms at start otherwise.
      assert.deepEqual(builtinsAmong(loaded, ['stream', 'internal/streams/readable']), []);
      assert.deepEqual(filesMatching(loaded, /node_modules[\\/](undici|openpgp|yaml|smol-toml|ws|tar-stream)[\\/]|vscode-jsonrpc[\\/]lib[\\/]node/), []);
      assert.deepEqual(filesMatching(loaded, /[\\/](transports[\\/]docker|wires[\\/]jsonrpc|policy[\\/]sigstore)[\\/]/), []);
      // Bundled, node:fs neither stats nor reads into a Buffer (their first runs cost ~1 ms): bin/layerpipe
      // stats the bundle and reads its caches with the addon, the proxy asks its socket's type before any fstat.
      if (layout === 'bundle') assert.deepEqual(loaded.fsCalls, []);
      // --insecure-policy: the policy parser and the reference grammar are not run (policy/load.ts imports them for a file).
      // (Seen in the tree; the bundle keeps them in the start's pack, not run.)
      assert.deepEqual(filesMatching(loaded, /[\\/](policy[\\/]parse|reference[\\/]grammar)\.js$/), []);
    });

    it(`${layout}: the first manifest loads no credential helper, OpenPGP, YAML or undici index (and, bundled, no node:http or HTTP/2)`, async (t) => {
      const command = layouts[layout];
      if (command === undefined) return t.skip('no current bundle: `npm run build` makes one');
      const loaded = await loadedBy(command, async (proxy) => {
        const image = await proxy.openImage(ref);
        assert.ok((await proxy.getManifest(image)).bytes.length > 0);
      });
      // The registry client did run (a layout that loaded nothing would pass the rest).
      assert.deepEqual(builtinsAmong(loaded, ['net', 'crypto']), ['net', 'crypto']);
      assert.deepEqual(builtinsAmong(loaded, ['child_process', 'zlib']), []);
      // Spans are timed with process.hrtime (monotonic-clock.ts): node:perf_hooks loads at the first large stream sampled.
      assert.deepEqual(builtinsAmong(loaded, ['perf_hooks']), []);
      // Configuration files are read with node:fs's callbacks (config-files.ts), not node:fs/promises and its
      // readline. (In the tree, TypeScript's `import * as fs` copies node:fs's lazy `promises` getter, loading it.)
      if (layout === 'bundle') assert.deepEqual(builtinsAmong(loaded, ['fs/promises', 'internal/fs/promises', 'readline']), []);
      // undici's Client loads its HTTP/2 half with it; the bundle defers that to a first h2 connection.
      // The bundle's undici loads node:http2, node:assert and node:http only when used (bundle-undici.ts).
      if (layout === 'bundle') assert.deepEqual(builtinsAmong(loaded, ['http2', 'assert', 'http']), []);
      assert.deepEqual(filesMatching(loaded, /node_modules[\\/](openpgp|yaml|ws|tar-stream)[\\/]|undici[\\/](index\.js|lib[\\/]web[\\/])/), []);
    });
  }
});
