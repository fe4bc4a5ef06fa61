/**
 * containers-registries.d(5): where the signatures of docker images are kept: a "lookaside" URL
 * for simple signing, and whether to read sigstore attachments, per registry namespace. Every *.yaml file of one directory is read:
 * --registries.d DIR, else the user's $HOME/.config/containers/registries.d when it exists
 * (it replaces the system one), else /etc/containers/registries.d. A missing directory means
 * no configuration. Read when signatures are needed, so edits apply to the next image.
 */
import path from 'node:path';
import { configFs as fs } from './config-files';
import { errorMessage, InvalidConfigError } from '../../protocol/errors';
import { homeDirectory } from './home';

export const SYSTEM_REGISTRIES_D = '/etc/containers/registries.d';
/** A registries.d file is a few lines; this is far beyond any real one. */
const MAX_FILE_SIZE = 1024 * 1024;

/** One entry (default-docker, or a docker: namespace): what it says about reading signatures. */
export interface LookasideEntry {
  readonly lookaside: string | undefined;
  /** The older name of lookaside; lookaside wins when both are given. */
  readonly sigstore: string | undefined;
  /** use-sigstore-attachments; undefined when the entry does not say. */
  readonly useSigstoreAttachments: boolean | undefined;
}

export interface RegistriesDConfig {
  readonly defaultDocker: LookasideEntry | undefined;
  /** Scope ("host/ns/repo", "host", "*.example.com", …) -> entry. */
  readonly docker: ReadonlyMap<string, LookasideEntry>;
}

const EMPTY: RegistriesDConfig = { defaultDocker: undefined, docker: new Map() };

export async function registriesDirectory(flag: string | undefined, home: string = homeDirectory()): Promise<string> {
  if (flag !== undefined) return flag;
  const user = path.join(home, '.config', 'containers', 'registries.d');
  try {
    await fs.stat(user);
    return user;
  } catch {
    return SYSTEM_REGISTRIES_D;
  }
}

function bad(file: string, what: string): never {
  throw new InvalidConfigError(`registries.d file ${file}: ${what}`);
}

function optionalString(v: unknown, file: string, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') bad(file, `${what} must be a string`);
  return v;
}

function optionalBoolean(v: unknown, file: string, what: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') bad(file, `${what} must be true or false`);
  return v;
}

function entryOf(v: unknown, file: string, what: string): LookasideEntry {
  if (v === null || v === undefined) return { lookaside: undefined, sigstore: undefined, useSigstoreAttachments: undefined };
  if (typeof v !== 'object' || Array.isArray(v)) bad(file, `${what} must be a mapping`);
  const o = v as Record<string, unknown>;
  return {
    lookaside: optionalString(o.lookaside, file, `${what}.lookaside`),
    sigstore: optionalString(o.sigstore, file, `${what}.sigstore`),
    useSigstoreAttachments: optionalBoolean(o['use-sigstore-attachments'], file, `${what}.use-sigstore-attachments`),
  };
}

/** Reads every *.yaml file of `dir` (sorted); a namespace or default-docker defined twice is an error, as in containers/image. */
export async function loadRegistriesD(dir: string): Promise<RegistriesDConfig> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.endsWith('.yaml')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY;
    throw new InvalidConfigError(`reading registries.d directory ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  let defaultDocker: { entry: LookasideEntry; file: string } | undefined;
  const docker = new Map<string, { entry: LookasideEntry; file: string }>();
  for (const name of names) {
    const file = path.join(dir, name);
    const stat = await fs.stat(file);
    if (!stat.isFile()) continue;
    if (stat.size > MAX_FILE_SIZE) bad(file, `larger than ${MAX_FILE_SIZE} bytes`);
    let doc: unknown;
    try {
      // yaml loads only when a file is there to parse: most hosts have no registries.d at all.
      const { parse: parseYaml } = require('yaml') as typeof import('yaml');
      doc = parseYaml(await fs.readFile(file, 'utf8'), { maxAliasCount: 100 });
    } catch (err) {
      bad(file, `not valid YAML: ${errorMessage(err)}`);
    }
    if (doc === null || doc === undefined) continue;
    if (typeof doc !== 'object' || Array.isArray(doc)) bad(file, 'the document must be a mapping');
    const top = doc as Record<string, unknown>;
    if (top['default-docker'] !== undefined && top['default-docker'] !== null) {
      if (defaultDocker !== undefined) bad(file, `default-docker is defined both in ${defaultDocker.file} and ${file}`);
      defaultDocker = { entry: entryOf(top['default-docker'], file, 'default-docker'), file };
    }
    const ns = top.docker;
    if (ns === undefined || ns === null) continue;
    if (typeof ns !== 'object' || Array.isArray(ns)) bad(file, 'docker must be a mapping of namespaces');
    for (const [scope, v] of Object.entries(ns as Record<string, unknown>)) {
      const seen = docker.get(scope);
      if (seen !== undefined) bad(file, `docker ${JSON.stringify(scope)} is defined both in ${seen.file} and ${file}`);
      docker.set(scope, { entry: entryOf(v, file, `docker ${JSON.stringify(scope)}`), file });
    }
  }
  return { defaultDocker: defaultDocker?.entry, docker: new Map([...docker].map(([k, v]) => [k, v.entry])) };
}

function urlOf(entry: LookasideEntry | undefined): string | undefined {
  if (entry === undefined) return undefined;
  if (entry.lookaside !== undefined && entry.lookaside !== '') return entry.lookaside;
  if (entry.sigstore !== undefined && entry.sigstore !== '') return entry.sigstore;
  return undefined;
}

/**
 * Where simple signatures are read when registries.d names no lookaside for an image, as
 * containers/image does: /var/lib/containers/sigstore for root, else the user's
 * ~/.local/share/containers/sigstore.
 */
export function builtinDefaultLookaside(euid: number = process.geteuid?.() ?? 0, home: string = homeDirectory()): string {
  return euid === 0 ? 'file:///var/lib/containers/sigstore' : `file://${path.join(home, '.local/share/containers/sigstore')}`;
}

/**
 * The lookaside base URL for an image: the first of its scopes (identity, then namespaces) with
 * an entry that names one, else default-docker's, else the built-in default.
 */
export function lookasideFor(config: RegistriesDConfig, scopes: readonly string[], fallback: string = builtinDefaultLookaside()): string {
  for (const scope of scopes) {
    const url = urlOf(config.docker.get(scope));
    if (url !== undefined) return url;
  }
  return urlOf(config.defaultDocker) ?? fallback;
}

/**
 * Whether sigstore attachments are read for an image: the first of its scopes whose entry sets
 * use-sigstore-attachments decides, else default-docker's, else no (containers/image's order).
 */
export function useSigstoreAttachmentsFor(config: RegistriesDConfig, scopes: readonly string[]): boolean {
  for (const scope of scopes) {
    const use = config.docker.get(scope)?.useSigstoreAttachments;
    if (use !== undefined) return use;
  }
  return config.defaultDocker?.useSigstoreAttachments ?? false;
}
