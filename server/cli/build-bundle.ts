/**
 * Build step (`npm run build`): the CLI as chunks in dist/bundle/, stored in packs of chunks
 * loaded together (bundle-packs.ts), with V8's code cache for each pack (<pack>.cache), which
 * bin/layerpipe starts from (its loader is typed in start.ts).
 *
 * Every `import()` of the sources is a place where a new chunk may start: esbuild splits the CLI
 * there (each command; at a proxy's first image, the open path with the transports, policy and
 * registry client; at the first JSON-RPC packet, the 1.0 wire), shared code going to chunks of
 * its own, and each chunk is then rewritten as a CommonJS module that requires the chunks it
 * imports. A proxy answering Initialize thus reads and runs about a tenth of the CLI. What
 * `require()` loads lazily stays lazy within its chunk (esbuild wraps the module in a function),
 * though the built-ins such a module imports load with its chunk: a module needing a costly
 * built-in only sometimes is reached through `import()`. Packages loaded only for rarer work stay
 * outside, required from node_modules when used: openpgp (signedBy), yaml (registries.d), ws
 * (WebSocket service), tar-stream (archives), undici's index (proxies) and fetch's body module
 * (FormData bodies; bundle-undici.ts says why); the registry client's parts of undici (Agent,
 * request) are in the bundle, its HTTP parser's WebAssembly in files beside the packs.
 *
 * The code caches are made after a warm-up (bundle-warm-up.ts): the bundle serves Initialize and a
 * first image from a loopback registry in this process, so that the functions a start and a first
 * manifest run are in the caches already compiled.
 */
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { UNDO_LIFTOFF_ONLY } from '../transports/docker/llhttp-tiers';
import { undiciLoading, writeParserWasm } from './bundle-undici';
import { warmUp } from './bundle-warm-up';
import { assignPacks, packText, type BuiltChunk } from './bundle-packs';
import { BIN, BUILD_ID_PREFIX, cacheFileOf, codeCacheFile, compilePack, ENTRY_CHUNK, INSTALLED, loadBundle, PACK_INDEX } from './start';

const BUNDLE_DIR = INSTALLED.bundleDir;

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
      const fromBundle = path.relative(BUNDLE_DIR, compiledDir);
      const expr = `require('node:path').join(__dirname, ${JSON.stringify(fromBundle)})`;
      return { contents: source.replace(/\b__dirname\b/g, expr), loader: 'ts' };
    });
  },
};

/** A chunk requires another as `./<name>.js`; bin/layerpipe's loader takes every relative require for one. */
const RELATIVE_REQUIRE = /\brequire\("(\.[^"]*)"\)/g;

/** Refuses a chunk bin/layerpipe could not load as the build meant: non-ASCII text, or a relative require of no chunk. */
function checkChunk(name: string, code: string, chunks: ReadonlySet<string>): void {
  if (/[^\x00-\x7f]/.test(code)) throw new Error(`${name} is not ASCII: bin/layerpipe reads packs as ASCII`);
  for (const [, target] of code.matchAll(RELATIVE_REQUIRE)) {
    if (!target?.startsWith('./') || !chunks.has(target.slice(2))) throw new Error(`${name} requires ${target}, which is no chunk of the bundle`);
  }
}

/** The chunks a chunk requires when it runs: its import statements (an `import()` loads later). */
function staticImports(output: esbuild.Metafile['outputs'][string]): string[] {
  return output.imports.filter((imported) => imported.kind === 'import-statement' && imported.external !== true).map((imported) => path.basename(imported.path));
}

/** esbuild's ES-module chunks, each rewritten as a CommonJS module body (its `import()`s as requires). */
async function buildChunks(): Promise<BuiltChunk[]> {
  const built = await esbuild.build({
    absWorkingDir: PACKAGE_ROOT,
    entryPoints: { [path.basename(ENTRY_CHUNK, '.js')]: path.join('server', 'cli', 'index.ts') },
    outdir: BUNDLE_DIR,
    bundle: true,
    splitting: true, // esbuild splits ES modules only: hence the rewrite below
    format: 'esm',
    chunkNames: '[name]-[hash]',
    platform: 'node',
    target: 'node20',
    charset: 'ascii',
    minify: true,
    legalComments: 'external',
    plugins: [externalPackages, compiledDirname, undiciLoading],
    sourcemap: 'inline', // taken up by the rewrite, which gives each chunk's map
    metafile: true,
    write: false,
    logLevel: 'warning',
  });
  const outputs = new Map(Object.entries(built.metafile.outputs).map(([file, output]) => [path.resolve(PACKAGE_ROOT, file), output]));
  const scripts = built.outputFiles.filter((file) => file.path.endsWith('.js'));
  const names = new Set(scripts.map((file) => path.basename(file.path)));
  const legal = [...new Set(built.outputFiles.filter((file) => file.path.endsWith('.LEGAL.txt')).map((file) => file.text))];
  mkdirSync(BUNDLE_DIR, { recursive: true });
  writeFileSync(path.join(BUNDLE_DIR, 'LEGAL.txt'), legal.join('\n'));
  return Promise.all(scripts.map(async (file) => {
    const name = path.basename(file.path);
    const output = outputs.get(file.path);
    if (output === undefined) throw new Error(`esbuild's metafile has no ${file.path}`);
    const chunk = await esbuild.transform(file.text, {
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      charset: 'ascii',
      minify: true,
      supported: { 'dynamic-import': false }, // import() becomes a require of the chunk, in a promise
      sourcemap: 'external',
      sourcefile: name,
    });
    checkChunk(name, chunk.code, names);
    return { name, code: chunk.code, map: chunk.map, imports: staticImports(output), entryPoint: output.entryPoint };
  }));
}

/** Builds the chunks and writes them in packs (bundle-packs.ts), with their maps and the index bin/layerpipe reads. */
export async function buildBundle(): Promise<void> {
  rmSync(BUNDLE_DIR, { recursive: true, force: true }); // no pack or cache of an earlier build stays
  const chunks = await buildChunks();
  writeParserWasm(BUNDLE_DIR);
  const byName = new Map(chunks.map((chunk) => [chunk.name, chunk]));
  const index: Record<string, readonly string[]> = {};
  for (const pack of assignPacks(chunks)) {
    const { code, map } = packText(pack, byName);
    const text = `${code}//# sourceMappingURL=${pack.file}.map\n`;
    writeFileSync(path.join(BUNDLE_DIR, `${pack.file}.map`), map);
    writeFileSync(path.join(BUNDLE_DIR, pack.file), `${text}${BUILD_ID_PREFIX}${createHash('sha256').update(text).digest('hex')}\n`);
    index[pack.file] = pack.chunks;
  }
  // Written last: bin/layerpipe takes the bundle as current by this file's time.
  writeFileSync(path.join(BUNDLE_DIR, PACK_INDEX), `${JSON.stringify(index, null, 1)}\n`);
}

/** Run in a new node: the packs (all read, as bin/layerpipe reads them) whose cache V8 did not take. */
const CACHE_CHECK = `const start = require(${JSON.stringify(BIN)});
const { loader } = start.loadBundle(start.INSTALLED, true);
for (const chunk of Object.values(require(${JSON.stringify(path.join(BUNDLE_DIR, PACK_INDEX))})).map((chunks) => chunks[0])) loader.load(chunk);
const refused = [...loader.loadedPacks].filter(([, script]) => script.cachedDataRejected !== false).map(([file]) => file);
process.stdout.write(refused.length === 0 ? 'accepted' : 'refused: ' + refused.join(' '));`;

/**
 * Loads the bundle here, runs its warm-up (bundle-warm-up.ts) and writes each pack's compiled
 * code as V8 then holds it (a pack the warm-up did not read: as compiled, its functions still
 * lazy), with V8's flags set back as a start has them when it checks the caches.
 */
export async function buildCodeCache(): Promise<void> {
  const { cli, loader } = loadBundle(INSTALLED, false);
  await warmUp(cli);
  for (const flag of UNDO_LIFTOFF_ONLY) setFlagsFromString(flag);
  const index = JSON.parse(readFileSync(path.join(BUNDLE_DIR, PACK_INDEX), 'utf8')) as Record<string, string[]>;
  for (const packFile of Object.keys(index)) {
    const file = path.join(BUNDLE_DIR, packFile);
    const source = readFileSync(file, 'utf8');
    const script = loader.loadedPacks.get(packFile) ?? compilePack(file, false);
    writeFileSync(cacheFileOf(file), codeCacheFile(source, script.createCachedData()));
  }
  // A cache V8 refuses costs every start a full compile and nothing says so: refuse the build instead.
  const check = spawnSync(process.execPath, ['-e', CACHE_CHECK], { encoding: 'utf8' });
  if (check.stdout.trim() !== 'accepted') throw new Error(`V8 refuses a code cache in a new process: ${check.stdout}${check.stderr}`);
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
