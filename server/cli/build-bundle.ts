/**
 * Build step (`npm run build`): the CLI in one file, dist/bundle/layerpipe.js, and V8's code
 * cache for it, dist/bundle/layerpipe.cache, which bin/layerpipe starts from (start.ts).
 *
 * What the compiled tree loads lazily stays lazy in the bundle (esbuild wraps each lazily
 * required module in a function). Packages loaded only for rarer work stay outside, required
 * from node_modules when used: openpgp (signedBy), yaml (registries.d), ws (WebSocket service),
 * tar-stream (archives) and undici's index (proxies); the registry client's parts of undici
 * (Agent, request) are in the bundle.
 *
 * The code cache is made after a warm-up (bundle-warm-up.ts): the bundle serves Initialize and a
 * first image from a loopback registry in this process, so that the functions a start and a first
 * manifest run are in the cache already compiled.
 */
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { UNDO_LIFTOFF_ONLY } from '../transports/docker/undici';
import { undiciLoading } from './bundle-undici';
import { warmUp } from './bundle-warm-up';
import { BUILD_ID_PREFIX, codeCacheFile, INSTALLED, loadBundle } from './start';

const BUNDLE_FILE = INSTALLED.bundle;

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

/** Whole packages only: undici's subpaths (lib/dispatcher/agent, lib/api/api-request) are bundled. */
const EXTERNAL_PACKAGES = /^(openpgp|yaml|ws|tar-stream|undici)$/;

const externalPackages: esbuild.Plugin = {
  name: 'external-packages',
  setup(build) {
    build.onResolve({ filter: EXTERNAL_PACKAGES }, (args) => ({ path: args.path, external: true }));
  },
};

/**
 * `__dirname` in a bundled module would name the bundle's directory; each of our modules gets
 * the directory its compiled file has in dist/ instead, so that paths found from it (package.json,
 * the native addon) are the same in both layouts.
 */
const compiledDirname: esbuild.Plugin = {
  name: 'compiled-dirname',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('__dirname')) return undefined;
      const compiledDir = path.join(PACKAGE_ROOT, 'dist', path.relative(PACKAGE_ROOT, path.dirname(args.path)));
      const fromBundle = path.relative(path.dirname(BUNDLE_FILE), compiledDir);
      const expr = `require('node:path').join(__dirname, ${JSON.stringify(fromBundle)})`;
      return { contents: source.replace(/\b__dirname\b/g, expr), loader: 'ts' };
    });
  },
};

export async function buildBundle(): Promise<void> {
  await esbuild.build({
    entryPoints: [path.join(PACKAGE_ROOT, 'server', 'cli', 'index.ts')],
    outfile: BUNDLE_FILE,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    charset: 'ascii',
    minify: true,
    legalComments: 'external',
    plugins: [externalPackages, compiledDirname, undiciLoading],
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  const bundle = readFileSync(BUNDLE_FILE);
  if (bundle.some((byte) => byte > 0x7f)) throw new Error(`${BUNDLE_FILE} is not ASCII: start.ts reads it as latin1`);
  appendFileSync(BUNDLE_FILE, `${BUILD_ID_PREFIX}${createHash('sha256').update(bundle).digest('hex')}\n`);
}

/** Run in a new node: whether V8 takes the installed bundle's cache, loaded as start.ts loads it. */
const CACHE_CHECK = `const start = require(${JSON.stringify(path.join(__dirname, 'start.js'))});
process.stdout.write(start.loadBundle(start.INSTALLED, true).script.cachedDataRejected === false ? 'accepted' : 'refused');`;

/**
 * Loads the bundle here, runs its warm-up (bundle-warm-up.ts) and writes the compiled code V8 then
 * holds, with V8's flags set back as a start has them when it checks the cache.
 */
export async function buildCodeCache(): Promise<void> {
  const { cli, script, source } = loadBundle(INSTALLED, false);
  await warmUp(cli);
  for (const flag of UNDO_LIFTOFF_ONLY) setFlagsFromString(flag);
  writeFileSync(INSTALLED.codeCache, codeCacheFile(source, script.createCachedData()));
  // A cache V8 refuses costs every start a full compile and nothing says so: refuse the build instead.
  const check = spawnSync(process.execPath, ['-e', CACHE_CHECK], { encoding: 'utf8' });
  if (check.stdout.trim() !== 'accepted') throw new Error(`V8 refuses the code cache in a new process: ${check.stdout}${check.stderr}`);
}

if (require.main === module) {
  buildBundle().then(buildCodeCache).then(
    () => process.exit(0), // the warm-up session leaves signal handlers behind
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
