/**
 * How bin/layerpipe starts the CLI. `npm run build` makes dist/bundle/ (build-bundle.ts): the CLI
 * split into chunks, an entry (layerpipe.js) and the chunks it loads when it needs them, stored
 * in packs of chunks loaded together (bundle-packs.ts), each pack with V8's compiled code for it
 * (<pack>.cache). Started from those, a proxy reads and compiles one file for Initialize (a tenth
 * of the CLI, already compiled) and one more at its first image, instead of resolving, reading
 * and compiling a hundred modules, or deserialising code for all of them.
 *
 * The bundle is used only when it is at least as new as the compiled tree (a `tsc` run after it
 * makes it stale), and each cache only with the pack it was made from; otherwise the tree runs.
 * V8 itself refuses a cache made by another V8 version or under other flags, and then compiles.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Script } from 'node:vm';

export interface Cli {
  main(argv: readonly string[]): void;
  run(argv: readonly string[]): Promise<number>;
}

/** Where the two layouts of the CLI are. */
export interface CliFiles {
  /** dist/bundle/: the packs of chunks, their caches and their index. */
  readonly bundleDir: string;
  /** The compiled tree's entry, server/cli/index.js. */
  readonly tree: string;
}

/** The chunk the CLI starts from; the others are named by the chunks that require them. */
export const ENTRY_CHUNK = 'layerpipe.js';

/** The installed layouts: dist/bundle/ next to dist/server/cli/, where this file is compiled to. */
export const INSTALLED: CliFiles = {
  bundleDir: path.join(__dirname, '..', '..', 'bundle'),
  tree: path.join(__dirname, 'index.js'),
};

/** The bundle's index (build-bundle.ts): each pack file and the chunks it holds. */
export const PACK_INDEX = 'packs.json';

/** A pack's code cache file, next to it. */
export const cacheFileOf = (packFile: string): string => packFile.replace(/\.js$/, '.cache');

/**
 * The build ends each pack with a line holding its content hash and starts the pack's cache
 * with the same line, so a cache is used only with its own pack. (V8 checks a cache against the
 * source's length only, and npm resets the times of the files it unpacks.)
 */
export const BUILD_ID_PREFIX = '//# layerpipe-build=';

function buildIdLine(source: string): string | undefined {
  const at = source.lastIndexOf(BUILD_ID_PREFIX);
  if (at < 0) return undefined;
  const end = source.indexOf('\n', at);
  return end < 0 ? undefined : source.slice(at, end + 1);
}

/** The cached code for this pack source, if the cache file was made from it. */
function readCodeCache(file: string, source: string): Buffer | undefined {
  const id = buildIdLine(source);
  if (id === undefined) return undefined;
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch {
    return undefined;
  }
  const header = Buffer.from(id, 'latin1');
  return data.subarray(0, header.length).equals(header) ? data.subarray(header.length) : undefined;
}

/** The cache file's bytes for a Script compiled from the pack `source`. */
export function codeCacheFile(source: string, cachedData: Buffer): Buffer {
  const id = buildIdLine(source);
  if (id === undefined) throw new Error('the pack has no build id line');
  return Buffer.concat([Buffer.from(id, 'latin1'), cachedData]);
}

/** A pack compiled (with `cachedData` when given): run, it gives each of its chunks' module functions by name. */
export function compilePack(file: string, source: string, cachedData?: Buffer): Script {
  return new Script(source, { filename: file, ...(cachedData !== undefined ? { cachedData } : {}) });
}

type ChunkFunction = (exports: unknown, require: NodeJS.Require, module: unknown, filename: string, dirname: string) => void;

/**
 * Loads the bundle's chunks as Node loads CommonJS modules: each runs once, at its first require.
 * A chunk's pack (bundle-packs.ts) is read and compiled, with its code cache when `useCache`, at
 * the first require of any chunk in it. A chunk requires another as `./<name>.js` (build-bundle.ts
 * checks that no other relative require is left); anything else (node: built-ins, the packages
 * kept outside the bundle) is required with this module's own require.
 */
export class BundleLoader {
  /** The pack file of each chunk, from the index. */
  private readonly packOf: ReadonlyMap<string, string>;
  private readonly packs = new Map<string, Script>();
  private readonly functions = new Map<string, ChunkFunction>();
  private readonly modules = new Map<string, { exports: unknown }>();
  private readonly chunkRequire: NodeJS.Require;

  constructor(
    readonly dir: string,
    private readonly useCache: boolean,
  ) {
    const index = JSON.parse(readFileSync(path.join(dir, PACK_INDEX), 'utf8')) as Record<string, string[]>;
    this.packOf = new Map(Object.entries(index).flatMap(([file, chunks]) => chunks.map((chunk) => [chunk, file] as const)));
    // This module's own require finds the same packages as one made for the bundle's directory
    // would (both are inside the package, above the same node_modules), without loading
    // node:module and the ES-module loader with it (~0.6 ms of every start). A real require's
    // resolve, cache and main stay: bundled packages (node-gyp-build) use them.
    this.chunkRequire = Object.assign((id: string): unknown => (id.startsWith('./') ? this.load(id.slice(2)) : require(id)), require);
  }

  /** The packs read so far, by file name, with the Script each was compiled to. */
  get loadedPacks(): ReadonlyMap<string, Script> {
    return this.packs;
  }

  /** The chunks run so far, in the order they started. */
  get loadedChunks(): readonly string[] {
    return [...this.modules.keys()];
  }

  /** The exports of chunk `name`, run at its first load. */
  load(name: string): unknown {
    const known = this.modules.get(name);
    if (known !== undefined) return known.exports;
    const run = this.functions.get(name) ?? this.readPack(name);
    const module = { exports: {} };
    // Registered before it runs, as Node's require does, so that a cycle gets the exports so far.
    this.modules.set(name, module);
    run.call(module.exports, module.exports, this.chunkRequire, module, path.join(this.dir, name), this.dir);
    return module.exports;
  }

  /** Reads and compiles the pack holding chunk `name`; returns that chunk's function. */
  private readPack(name: string): ChunkFunction {
    const packFile = this.packOf.get(name);
    if (packFile === undefined || this.packs.has(packFile)) throw new Error(`the bundle in ${this.dir} has no chunk ${name}`);
    const file = path.join(this.dir, packFile);
    // ASCII only (the build checks), so read as UTF-8: Node makes that string in one native call,
    // where a latin1 one is decoded from a Buffer read first (~0.4 ms more for the start pack).
    const source = readFileSync(file, 'utf8');
    const script = compilePack(file, source, this.useCache ? readCodeCache(cacheFileOf(file), source) : undefined);
    this.packs.set(packFile, script);
    for (const [chunk, run] of Object.entries(script.runInThisContext() as Record<string, ChunkFunction>)) this.functions.set(chunk, run);
    const run = this.functions.get(name);
    if (run === undefined) throw new Error(`pack ${packFile} lacks its chunk ${name}`);
    return run;
  }
}

export interface LoadedBundle {
  readonly cli: Cli;
  readonly loader: BundleLoader;
}

/** The CLI from the bundle's entry chunk, with the chunks' code caches when `useCache`. */
export function loadBundle(files: CliFiles, useCache: boolean): LoadedBundle {
  const loader = new BundleLoader(files.bundleDir, useCache);
  return { cli: loader.load(ENTRY_CHUNK) as Cli, loader };
}

/** Whether the bundle is there and no older than the compiled tree (whose every file `tsc` rewrites). */
export function bundleIsCurrent(files: CliFiles): boolean {
  try {
    return statSync(path.join(files.bundleDir, PACK_INDEX)).mtimeMs >= statSync(files.tree).mtimeMs;
  } catch {
    return false;
  }
}

/** The CLI: the bundle when current, else the compiled tree. */
export function cli(files: CliFiles = INSTALLED): Cli {
  return bundleIsCurrent(files) ? loadBundle(files, true).cli : (require(files.tree) as Cli);
}

export function start(argv: readonly string[]): void {
  cli().main(argv);
}
