/**
 * containers-registries.conf(5) and containers-registries.conf.d(5): which files are read, how
 * drop-ins override the main file, and what an image name maps to (mirrors, rewrites,
 * insecure and blocked registries). Short names ([aliases], unqualified-search-registries,
 * short-name-mode) are resolved by server/reference/short-names.ts from this configuration.
 */
import path from 'node:path';
import { configFs as fs } from './config-files';
import { BlockedRegistryError, InvalidConfigError, errorMessage } from '../../protocol/errors';
import { homeDirectory } from './home';
import {
  parseRegistriesConfFile,
  type RegistriesConfFile,
  type RegistryEntry,
  type RegistryMirror,
  type ShortNameMode,
} from './registries-conf-file';

export type { PullFromMirror, RegistryEntry, RegistryMirror, ShortNameMode } from './registries-conf-file';

export interface RegistriesConfig {
  /** One entry per prefix, sorted by prefix. */
  readonly registries: readonly RegistryEntry[];
  readonly unqualifiedSearchRegistries: readonly string[];
  /** "permissive" when no file sets it. */
  readonly shortNameMode: ShortNameMode;
  /** Global credential helpers in order; "containers-auth.json" stands for the auth files. */
  readonly credentialHelpers: readonly string[];
  /** Short-name aliases: short name -> fully-qualified name. */
  readonly aliases: ReadonlyMap<string, string>;
  /** The files that were read, main file first, for messages. */
  readonly files: readonly string[];
}

export interface RegistriesConfigLoadOptions {
  /** --registries-conf; CONTAINERS_REGISTRIES_CONF (then REGISTRIES_CONFIG_PATH) in env is the default. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  homeDir?: string;
  /** The system directory holding registries.conf and registries.conf.d; /etc/containers. */
  systemDir?: string;
}

/** An empty configuration: every name maps to itself. */
export const EMPTY_REGISTRIES_CONFIG: RegistriesConfig = {
  registries: [],
  unqualifiedSearchRegistries: [],
  shortNameMode: 'permissive',
  credentialHelpers: ['containers-auth.json'],
  aliases: new Map(),
  files: [],
};

/**
 * Which main file and which drop-in directories apply. The main file is the explicit one, else
 * $HOME/.config/containers/registries.conf if it exists (then only the user's drop-ins apply),
 * else /etc/containers/registries.conf with the system's and then the user's drop-ins.
 */
export async function registriesConfSources(opts: RegistriesConfigLoadOptions): Promise<{ mainFile: string; explicit: boolean; dropInDirs: string[] }> {
  const env = opts.env ?? process.env;
  const home = opts.homeDir ?? homeDirectory(env);
  const systemDir = opts.systemDir ?? '/etc/containers';
  const userFile = path.join(home, '.config', 'containers', 'registries.conf');
  const userDropIns = path.join(home, '.config', 'containers', 'registries.conf.d');
  const systemDropIns = path.join(systemDir, 'registries.conf.d');
  const explicit = nonEmpty(opts.path) ?? nonEmpty(env.CONTAINERS_REGISTRIES_CONF) ?? nonEmpty(env.REGISTRIES_CONFIG_PATH);
  if (explicit !== undefined) return { mainFile: explicit, explicit: true, dropInDirs: [systemDropIns, userDropIns] };
  if (await exists(userFile)) return { mainFile: userFile, explicit: false, dropInDirs: [userDropIns] };
  return { mainFile: path.join(systemDir, 'registries.conf'), explicit: false, dropInDirs: [systemDropIns, userDropIns] };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch {
    return false;
  }
}

async function readConf(file: string, requireV2: boolean): Promise<RegistriesConfFile | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InvalidConfigError(`reading registries configuration ${file}: ${errorMessage(err)}`, { cause: err });
  }
  return parseRegistriesConfFile(text, file, { requireV2 });
}

/** The *.conf files of a directory in byte order; sub-directories are ignored, a missing directory is empty. */
async function dropInFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new InvalidConfigError(`reading registries.conf.d directory ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  return entries
    .filter((e) => !e.isDirectory() && e.name.endsWith('.conf'))
    .map((e) => e.name)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((name) => path.join(dir, name));
}

/**
 * Reads the registries configuration from the files registriesConfSources names; only an
 * explicit main file must exist. Drop-ins replace [[registry]] tables with the same prefix and any global
 * setting they set; aliases with "" values are erased.
 */
export async function loadRegistriesConfig(opts: RegistriesConfigLoadOptions): Promise<RegistriesConfig> {
  const sources = await registriesConfSources(opts);
  const main = await readConf(sources.mainFile, false);
  if (main === undefined && sources.explicit) {
    throw new InvalidConfigError(`loading registries configuration ${sources.mainFile}: no such file`);
  }
  const files = main === undefined ? [] : [main];
  for (const dir of sources.dropInDirs) {
    for (const file of await dropInFiles(dir)) {
      const dropIn = await readConf(file, true);
      if (dropIn !== undefined) files.push(dropIn); // Removed since the listing: ignore.
    }
  }
  return mergeRegistriesConfFiles(files);
}

/** Applies files in order; later files override. */
export function mergeRegistriesConfFiles(files: readonly RegistriesConfFile[]): RegistriesConfig {
  const byPrefix = new Map<string, RegistryEntry>();
  let unqualified: readonly string[] = [];
  let helpers: readonly string[] | undefined;
  let mode: ShortNameMode | undefined;
  const aliases = new Map<string, string>();
  for (const file of files) {
    for (const r of file.registries) byPrefix.set(r.prefix, r);
    if (file.unqualifiedSearchRegistries !== undefined) unqualified = file.unqualifiedSearchRegistries;
    if (file.credentialHelpers !== undefined) helpers = file.credentialHelpers;
    if (file.shortNameMode !== undefined) mode = file.shortNameMode;
    for (const [name, value] of file.aliases) {
      if (value === '') aliases.delete(name);
      else aliases.set(name, value);
    }
  }
  const registries = [...byPrefix.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  return {
    registries,
    unqualifiedSearchRegistries: unqualified,
    shortNameMode: mode ?? 'permissive',
    credentialHelpers: helpers !== undefined && helpers.length > 0 ? helpers : EMPTY_REGISTRIES_CONFIG.credentialHelpers,
    aliases,
    files: files.map((f) => f.path),
  };
}

/**
 * How many leading characters of name a prefix matches, or -1. A prefix matches the whole name
 * or a part of it followed by ":", "/" or "@" (so "example.com" also matches
 * "example.com:5000/…", as in containers tools). "*.example.com" matches any subdomain's names.
 */
export function prefixMatchLength(name: string, prefix: string): number {
  if (prefix.startsWith('*.')) {
    const suffix = prefix.slice(1);
    const index = name.indexOf(suffix);
    if (index <= 0 || name.slice(0, index).includes('/')) return -1;
    const end = index + suffix.length;
    return end === name.length || ':/@'.includes(name.charAt(end)) ? end : -1;
  }
  if (name === prefix) return prefix.length;
  if (name.length > prefix.length && name.startsWith(prefix) && ':/@'.includes(name.charAt(prefix.length))) return prefix.length;
  return -1;
}

/** The [[registry]] with the longest prefix matching a fully-qualified name, if any. */
export function findRegistry(config: RegistriesConfig, name: string): RegistryEntry | undefined {
  let best: RegistryEntry | undefined;
  for (const r of config.registries) {
    if (prefixMatchLength(name, r.prefix) !== -1 && (best === undefined || r.prefix.length > best.prefix.length)) best = r;
  }
  return best;
}

export interface PullSource {
  /** "host[:port]/repo" after rewrite (with the tag or digest, if the input had one). */
  name: string;
  insecure: boolean;
  mirror: boolean;
}

/**
 * Where to pull a fully-qualified name from ("host[:port]/path", optionally with ":tag" or
 * "@digest"; docker.io names include "library/"): the usable mirrors in order, then the
 * primary location. Throws BlockedRegistryError when the name, or the primary location it is
 * rewritten to, falls under a blocked registry; mirrors that are blocked are left out.
 */
export function pullSourcesFor(config: RegistriesConfig, name: string, by: 'tag' | 'digest'): PullSource[] {
  const registry = findRegistry(config, name);
  if (registry === undefined) return [{ name, insecure: false, mirror: false }];
  if (registry.blocked) throw blockedError(config, name, registry);

  const mirrors = registry.mirrors.filter((m: RegistryMirror) => {
    if (registry.mirrorByDigestOnly) return by === 'digest';
    return m.pullFromMirror === 'all' || (m.pullFromMirror === 'digest-only' ? by === 'digest' : by === 'tag');
  });
  const sources: PullSource[] = [];
  for (const m of mirrors) {
    const physical = rewrite(name, registry.prefix, m.location);
    if (findRegistry(config, physical)?.blocked === true) continue;
    sources.push({ name: physical, insecure: m.insecure, mirror: true });
  }
  const primary = rewrite(name, registry.prefix, registry.location);
  const primaryRegistry = findRegistry(config, primary);
  if (primaryRegistry?.blocked === true) throw blockedError(config, primary, primaryRegistry);
  sources.push({ name: primary, insecure: registry.insecure, mirror: false });
  return sources;
}

function blockedError(config: RegistriesConfig, name: string, registry: RegistryEntry): BlockedRegistryError {
  const where = config.files.length > 0 ? ` in ${config.files.join(', ')}` : '';
  return new BlockedRegistryError(`registry ${registry.prefix} is blocked${where} (pulling ${name})`);
}

/** Replaces the matched prefix with location; a wildcard prefix without location leaves the name as is. */
function rewrite(name: string, prefix: string, location: string): string {
  if (location === '') return name;
  const matched = prefixMatchLength(name, prefix);
  const rewritten = location + name.slice(matched);
  const slash = rewritten.indexOf('/');
  if (slash <= 0 || slash === rewritten.length - 1) {
    throw new InvalidConfigError(`rewriting ${name} with prefix ${prefix} to location ${location} gives ${rewritten}, which is not a host[:port]/repository name`);
  }
  return rewritten;
}

/** Whether registries.conf allows plain HTTP and unverified TLS for a host[:port] (or a longer name). */
export function isInsecureRegistry(config: RegistriesConfig, hostPort: string): boolean {
  return findRegistry(config, hostPort)?.insecure ?? false;
}

export function unqualifiedSearchRegistries(config: RegistriesConfig): string[] {
  return [...config.unqualifiedSearchRegistries];
}
