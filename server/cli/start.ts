/**
 * How bin/layerpipe starts the CLI. `npm run build` makes dist/bundle/layerpipe.js (the CLI in
 * one file) and dist/bundle/layerpipe.cache (V8's compiled code for it, see build-bundle.ts).
 * Started from those, a proxy reads two files instead of resolving, reading and compiling a
 * hundred modules.
 *
 * The bundle is used only when it is at least as new as the compiled tree (a `tsc` run after it
 * makes it stale), and the cache only with the bundle it was made from; otherwise the tree runs.
 * V8 itself refuses a cache made by another V8 version or under other flags, and then compiles.
 */
import { readFileSync, statSync } from 'node:fs';
import Module from 'node:module';
import path from 'node:path';
import { Script } from 'node:vm';

export interface Cli {
  main(argv: readonly string[]): void;
  run(argv: readonly string[]): Promise<number>;
}

/** Where the two layouts of the CLI are. */
export interface CliFiles {
  readonly bundle: string;
  readonly codeCache: string;
  /** The compiled tree's entry, server/cli/index.js. */
  readonly tree: string;
}

/** The installed layouts: dist/bundle/ next to dist/server/cli/, where this file is compiled to. */
export const INSTALLED: CliFiles = {
  bundle: path.join(__dirname, '..', '..', 'bundle', 'layerpipe.js'),
  codeCache: path.join(__dirname, '..', '..', 'bundle', 'layerpipe.cache'),
  tree: path.join(__dirname, 'index.js'),
};

/**
 * The build ends the bundle with a line holding its content hash and starts the cache with the
 * same line, so a cache is used only with its own bundle. (V8 checks a cache against the
 * source's length only, and npm resets the times of the files it unpacks.)
 */
export const BUILD_ID_PREFIX = '//# layerpipe-build=';

function buildIdLine(source: string): string | undefined {
  const at = source.lastIndexOf(BUILD_ID_PREFIX);
  if (at < 0) return undefined;
  const end = source.indexOf('\n', at);
  return end < 0 ? undefined : source.slice(at, end + 1);
}

/** The cached code for this bundle source, if the cache file was made from it. */
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

/** The cache file's bytes for a Script compiled from the bundle `source`. */
export function codeCacheFile(source: string, cachedData: Buffer): Buffer {
  const id = buildIdLine(source);
  if (id === undefined) throw new Error('the bundle has no build id line');
  return Buffer.concat([Buffer.from(id, 'latin1'), cachedData]);
}

export interface LoadedBundle {
  readonly cli: Cli;
  /** Kept for making a cache (build-bundle.ts) and for tests (whether V8 took the cache). */
  readonly script: Script;
  readonly source: string;
}

/** Compiles and runs the bundle as Node runs a CommonJS module, with its code cache when `useCache`. */
export function loadBundle(files: CliFiles, useCache: boolean): LoadedBundle {
  const source = readFileSync(files.bundle, 'latin1'); // the build writes ASCII only
  const cachedData = useCache ? readCodeCache(files.codeCache, source) : undefined;
  const script = new Script(Module.wrap(source), { filename: files.bundle, ...(cachedData !== undefined ? { cachedData } : {}) });
  const module = { exports: {} as Cli };
  const wrapper = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: unknown, filename: string, dirname: string) => void;
  wrapper.call(module.exports, module.exports, Module.createRequire(files.bundle), module, files.bundle, path.dirname(files.bundle));
  return { cli: module.exports, script, source };
}

/** Whether the bundle is there and no older than the compiled tree (whose every file `tsc` rewrites). */
export function bundleIsCurrent(files: CliFiles): boolean {
  try {
    return statSync(files.bundle).mtimeMs >= statSync(files.tree).mtimeMs;
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
