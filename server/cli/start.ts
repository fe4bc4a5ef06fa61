/**
 * How bin/layerpipe starts the CLI, typed for the build (build-bundle.ts) and the tests: the
 * loader itself is in bin/layerpipe, so that a start compiles no module of its own before the
 * bundle's cached code (see there). `npm run build` makes dist/bundle/: the CLI split into chunks,
 * an entry (layerpipe.js) and the chunks it loads when it needs them, stored in packs of chunks
 * loaded together (bundle-packs.ts), each pack with V8's compiled code for it (<pack>.cache).
 *
 * The bundle is used only when it is at least as new as the compiled tree, and each cache only
 * with the pack it was made from; otherwise the tree runs. V8 itself refuses a cache made by
 * another V8 version or under other flags, and then compiles.
 */
import path from 'node:path';
import type { Script } from 'node:vm';

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

/** The bundle's chunks, loaded as Node loads CommonJS modules (each runs once, at its first require). */
export interface BundleLoader {
  readonly dir: string;
  /** The exports of chunk `name`, run at its first load; its pack is read at the first load of any of its chunks. */
  load(name: string): unknown;
  /** The packs read so far, by file name, with the Script each was compiled to. */
  readonly loadedPacks: ReadonlyMap<string, Script>;
  /** The chunks run so far, in the order they started. */
  readonly loadedChunks: readonly string[];
}

export interface LoadedBundle {
  readonly cli: Cli;
  readonly loader: BundleLoader;
}

/** What bin/layerpipe exports when it is required rather than run. */
interface StartModule {
  /** The installed layouts: dist/bundle/ and dist/server/cli/index.js. */
  readonly INSTALLED: CliFiles;
  /** The chunk the CLI starts from. */
  readonly ENTRY_CHUNK: string;
  /** The bundle's index (build-bundle.ts): each pack file and the chunks it holds. */
  readonly PACK_INDEX: string;
  /** How the line naming a pack's build starts: the pack ends with it, its cache begins with it. */
  readonly BUILD_ID_PREFIX: string;
  /** A pack's code cache file, next to it. */
  cacheFileOf(packFile: string): string;
  /** The cache file's bytes for a Script compiled from the pack `source`. */
  codeCacheFile(source: string, cachedData: Buffer): Buffer;
  /** A pack compiled, with its code cache when `useCache` and the cache was made from it. */
  compilePack(file: string, useCache: boolean): Script;
  /** The CLI from the bundle's entry chunk, with the packs' code caches when `useCache`. */
  loadBundle(files: CliFiles, useCache: boolean): LoadedBundle;
  /** Whether the bundle is there and no older than the compiled tree (whose every file `tsc` rewrites). */
  bundleIsCurrent(files: CliFiles): boolean;
  /** The CLI: the bundle when current, else the compiled tree. */
  cli(files?: CliFiles): Cli;
}

/** bin/layerpipe, from dist/server/cli/ where this file is compiled to. */
export const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'layerpipe');

export const {
  INSTALLED, ENTRY_CHUNK, PACK_INDEX, BUILD_ID_PREFIX, cacheFileOf, codeCacheFile, compilePack, loadBundle, bundleIsCurrent, cli,
} = require(BIN) as StartModule;
