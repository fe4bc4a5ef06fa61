/**
 * Registry credentials from containers-auth.json(5) files, Docker's config.json and
 * ~/.dockercfg, and docker-credential-* helpers, looked up the way containers tools do.
 *
 * Nothing here logs or throws a secret: messages name files, keys and helpers only.
 */
import path from 'node:path';
import { configFs as fs } from './config-files';
import { CancelledError, CredentialHelperError, InvalidArgumentError, InvalidConfigError, errorMessage } from '../../protocol/errors';
import type { Logger } from '../log';
import { getFromCredentialHelper } from './credential-helper';
import { homeDirectory } from './home';

export type RegistryCredentials =
  | { kind: 'basic'; username: string; password: string }
  /** An OAuth2 refresh token (docker config's "identitytoken", or a helper's "<token>" user). */
  | { kind: 'identityToken'; username: string; token: string };

export interface AuthLookupOptions {
  /** --authfile: read only this file. REGISTRY_AUTH_FILE in env is the default, as in skopeo. */
  authFile?: string;
  env?: NodeJS.ProcessEnv;
  homeDir?: string;
  /**
   * registries.conf's credential-helpers, consulted in order; "containers-auth.json" means
   * the auth files. Default: ["containers-auth.json"].
   */
  credentialHelpers?: readonly string[];
  /** Where credentials were found (never the credentials). */
  logger?: Pick<Logger, 'debug'>;
  /**
   * What auth files that can be read only once (a pipe behind /proc/self/fd/N) held, for the
   * lookups that share it; the owner of the descriptor's context keeps one. Default: a new
   * one per lookup.
   */
  readOnceFiles?: ReadOnceFiles;
  /** Stops a credential helper that is still running (CancelledError). */
  signal?: AbortSignal;
}

/**
 * Auth files that can be read only once, kept as first read, keyed by path and the identity of
 * what the path points at (a reused descriptor number names another file).
 */
export class ReadOnceFiles {
  private readonly files = new Map<string, Promise<Buffer>>();

  read(key: string, load: () => Promise<Buffer>): Promise<Buffer> {
    let pending = this.files.get(key);
    if (pending === undefined) {
      pending = load();
      this.files.set(key, pending);
    }
    return pending;
  }
}

/** The credential-helpers entry that stands for the auth files themselves. */
export const AUTH_FILES_HELPER = 'containers-auth.json';

/** The key Docker's own tools use for Docker Hub in config.json and in credential stores. */
const DOCKER_HUB_LEGACY_URL = 'https://index.docker.io/v1/';

export interface AuthFileLocation {
  readonly path: string;
  /** ~/.dockercfg: top-level keys are registries, no "auths" wrapper. */
  readonly legacy: boolean;
}

/** The auth files consulted, in order. Some may not exist. */
export function authFileSearchPath(opts: AuthLookupOptions): AuthFileLocation[] {
  const env = opts.env ?? process.env;
  const explicit = nonEmpty(opts.authFile) ?? nonEmpty(env.REGISTRY_AUTH_FILE);
  if (explicit !== undefined) return [{ path: explicit, legacy: false }];
  const home = opts.homeDir ?? homeDirectory(env);
  const runtimeDir = nonEmpty(env.XDG_RUNTIME_DIR);
  const configHome = nonEmpty(env.XDG_CONFIG_HOME) ?? path.join(home, '.config');
  const dockerConfigDir = nonEmpty(env.DOCKER_CONFIG) ?? path.join(home, '.docker');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return [
    // The primary file; without XDG_RUNTIME_DIR containers tools use the per-UID /run path.
    { path: runtimeDir !== undefined ? path.join(runtimeDir, 'containers', 'auth.json') : `/run/containers/${uid}/auth.json`, legacy: false },
    { path: path.join(configHome, 'containers', 'auth.json'), legacy: false },
    { path: path.join(dockerConfigDir, 'config.json'), legacy: false },
    { path: path.join(home, '.dockercfg'), legacy: true },
  ];
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Docker Hub's host names all mean docker.io. */
function canonicalRegistry(registry: string): string {
  return registry === 'index.docker.io' || registry === 'registry-1.docker.io' ? 'docker.io' : registry;
}

/** The form auth-file keys are compared in after the exact lookups failed. */
function normalizeRegistry(registry: string): string {
  return registry === 'docker.io' || registry === 'registry-1.docker.io' ? 'index.docker.io' : registry;
}

/** Old `docker login` keys are URLs ("https://index.docker.io/v1/"); reduce them to host[:port]. */
function normalizeAuthFileKey(key: string, legacy: boolean): string {
  let stripped = key.replace(/^https?:\/\//, '');
  if (legacy || stripped !== key) stripped = stripped.split('/')[0] ?? '';
  return normalizeRegistry(stripped);
}

/**
 * Credentials for a repository of a registry ("host[:port]", "ns/repo"); undefined when none
 * are configured (anonymous access).
 */
export async function lookupCredentials(
  key: { registry: string; repository: string },
  opts: AuthLookupOptions,
): Promise<RegistryCredentials | undefined> {
  if (key.registry === '' || /^https?:\/\//.test(key.registry) || key.registry.includes('/')) {
    throw new InvalidArgumentError(`invalid registry ${JSON.stringify(key.registry)} for a credentials lookup, expected host[:port]`);
  }
  if (/[@:]/.test(key.repository) || key.repository.startsWith('/') || key.repository.endsWith('/')) {
    throw new InvalidArgumentError(`invalid repository ${JSON.stringify(key.repository)} for a credentials lookup`);
  }
  const registry = canonicalRegistry(key.registry);
  const fullName = key.repository === '' ? registry : `${registry}/${key.repository}`;
  const env = opts.env ?? process.env;
  const helpers = opts.credentialHelpers !== undefined && opts.credentialHelpers.length > 0 ? opts.credentialHelpers : [AUTH_FILES_HELPER];

  const failures: unknown[] = [];
  const files = opts.readOnceFiles ?? new ReadOnceFiles();
  for (const helper of helpers) {
    try {
      const found =
        helper === AUTH_FILES_HELPER
          ? await lookupInAuthFiles(fullName, registry, opts, files, env)
          : await askHelper(helper, registry, env, opts.signal); // Helpers hold per-registry entries only.
      if (found !== undefined) {
        opts.logger?.debug(`credentials for ${fullName} found in ${found.source}`);
        return found.credentials;
      }
    } catch (err) {
      if (err instanceof CancelledError) throw err; // the caller went away: no other source either
      failures.push(err);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) {
    throw new CredentialHelperError(`errors looking up credentials for ${fullName}: ${failures.map(errorMessage).join('; ')}`);
  }
  opts.logger?.debug(`no credentials for ${fullName}`);
  return undefined;
}

interface Found {
  readonly credentials: RegistryCredentials;
  /** For --debug: a file and key, or a helper name. */
  readonly source: string;
}

async function lookupInAuthFiles(
  fullName: string,
  registry: string,
  opts: AuthLookupOptions,
  files: ReadOnceFiles,
  env: NodeJS.ProcessEnv,
): Promise<Found | undefined> {
  // A missing file (also under a missing $XDG_RUNTIME_DIR) is skipped, as containers tools do.
  for (const location of authFileSearchPath(opts)) {
    const file = await loadAuthFile(location, files);
    if (file === undefined) continue;
    const found = await lookupInFile(file, location, fullName, registry, env, opts.signal);
    if (found !== undefined) return found;
  }
  return undefined;
}

interface AuthFileEntry {
  readonly auth: string;
  readonly identityToken: string;
}

interface AuthFile {
  readonly auths: ReadonlyMap<string, AuthFileEntry>;
  readonly credHelpers: ReadonlyMap<string, string>;
  /** Docker's default credential store for registries without a credHelpers entry. */
  readonly credsStore: string | undefined;
}

async function lookupInFile(
  file: AuthFile,
  location: AuthFileLocation,
  fullName: string,
  registry: string,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal | undefined,
): Promise<Found | undefined> {
  // A credHelpers entry owns its registry: whatever it says is this file's answer.
  const normalized = normalizeRegistry(registry);
  const helper =
    file.credHelpers.get(registry) ??
    [...file.credHelpers].find(([k]) => normalizeAuthFileKey(k, false) === normalized)?.[1];
  if (helper !== undefined) return askHelper(helper, registry, env, signal);

  // Exact keys from the most specific (the repository) to the registry; ~/.dockercfg has registries only.
  const candidates = location.legacy ? [registry] : hierarchy(fullName);
  for (const candidate of candidates) {
    const entry = file.auths.get(candidate);
    const credentials = entry === undefined ? undefined : decodeEntry(entry, candidate, location.path);
    if (credentials !== undefined) return { credentials, source: `${location.path} (${candidate})` };
  }
  // Then keys written as URLs or under another Docker Hub host name.
  for (const [candidate, entry] of file.auths) {
    if (normalizeAuthFileKey(candidate, location.legacy) !== normalized) continue;
    const credentials = decodeEntry(entry, candidate, location.path);
    if (credentials !== undefined) return { credentials, source: `${location.path} (${candidate})` };
  }
  if (file.credsStore !== undefined) return askHelper(file.credsStore, registry, env, signal);
  return undefined;
}

/** "quay.io/ns/repo" -> ["quay.io/ns/repo", "quay.io/ns", "quay.io"]. */
function hierarchy(name: string): string[] {
  const keys: string[] = [];
  let current = name;
  for (;;) {
    keys.push(current);
    const slash = current.lastIndexOf('/');
    if (slash === -1) return keys;
    current = current.slice(0, slash);
  }
}

async function askHelper(helper: string, registry: string, env: NodeJS.ProcessEnv, signal: AbortSignal | undefined): Promise<Found | undefined> {
  // containers tools ask for "docker.io"; `docker login` stores Docker Hub under its legacy URL.
  const serverUrls = registry === 'docker.io' ? [registry, DOCKER_HUB_LEGACY_URL] : [registry];
  for (const serverUrl of serverUrls) {
    const answer = await getFromCredentialHelper(helper, serverUrl, env, signal);
    if (answer === undefined) continue;
    const credentials: RegistryCredentials =
      answer.username === '<token>'
        ? { kind: 'identityToken', username: answer.username, token: answer.secret }
        : { kind: 'basic', username: answer.username, password: answer.secret };
    return { credentials, source: `docker-credential-${helper} (${serverUrl})` };
  }
  return undefined;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * An entry's credentials; undefined for entries that carry none (Docker writes `{}` markers
 * when a credential store holds the secret) or whose "auth" lacks the "user:" part.
 */
function decodeEntry(entry: AuthFileEntry, key: string, file: string): RegistryCredentials | undefined {
  let username: string | undefined;
  let password = '';
  // Go's decoder skips line breaks; it is strict about everything else.
  const auth = entry.auth.replace(/[\r\n]/g, '');
  if (auth !== '') {
    if (!BASE64.test(auth)) throw new InvalidConfigError(`the "auth" field of entry ${JSON.stringify(key)} in ${file} is not valid base64`);
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon !== -1) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1).replace(/^\0+|\0+$/g, '');
    }
  }
  if (entry.identityToken !== '') return { kind: 'identityToken', username: username ?? '<token>', token: entry.identityToken };
  if (username === undefined) return undefined;
  return { kind: 'basic', username, password };
}

const FD_PATH = /^\/(?:proc\/(?:self|thread-self|\d+)|dev)\/fd\/\d+$/;

/** A file's bytes; one that can be read only once (not a regular file, or a descriptor path) is read through `files`. */
async function readAuthFileBytes(file: string, files: ReadOnceFiles): Promise<Buffer | undefined> {
  let stat;
  try {
    stat = await fs.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InvalidConfigError(`reading auth file ${file}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    if (stat.isFile() && !FD_PATH.test(file)) return await fs.readFile(file);
    return await files.read(`${file}\0${stat.dev}:${stat.ino}`, () => fs.readFile(file));
  } catch (err) {
    throw new InvalidConfigError(`reading auth file ${file}: ${errorMessage(err)}`, { cause: err });
  }
}

/** A parsed auth file, or undefined when it does not exist. */
async function loadAuthFile(location: AuthFileLocation, files: ReadOnceFiles): Promise<AuthFile | undefined> {
  const bytes = await readAuthFileBytes(location.path, files);
  if (bytes === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    // JSON.parse quotes the text around a syntax error; that text may be a secret.
    throw new InvalidConfigError(`auth file ${location.path} is not valid JSON`);
  }
  const where = `auth file ${location.path}`;
  const top = asObject(json, where);
  if (location.legacy) return { auths: parseAuths(top, where), credHelpers: new Map(), credsStore: undefined };
  const auths = top.auths === undefined || top.auths === null ? new Map<string, AuthFileEntry>() : parseAuths(asObject(top.auths, `"auths" in ${where}`), where);
  const credHelpers = new Map<string, string>();
  if (top.credHelpers !== undefined && top.credHelpers !== null) {
    for (const [registry, helper] of Object.entries(asObject(top.credHelpers, `"credHelpers" in ${where}`))) {
      if (typeof helper !== 'string') throw new InvalidConfigError(`credHelpers entry ${JSON.stringify(registry)} in ${where} is not a string`);
      credHelpers.set(registry, helper);
    }
  }
  let credsStore: string | undefined;
  if (top.credsStore !== undefined && top.credsStore !== null) {
    if (typeof top.credsStore !== 'string') throw new InvalidConfigError(`"credsStore" in ${where} is not a string`);
    credsStore = nonEmpty(top.credsStore);
  }
  return { auths, credHelpers, credsStore };
}

function parseAuths(table: Record<string, unknown>, where: string): Map<string, AuthFileEntry> {
  const auths = new Map<string, AuthFileEntry>();
  for (const [key, value] of Object.entries(table)) {
    if (value === null) continue; // Go reads null as an empty entry.
    const entry = asObject(value, `entry ${JSON.stringify(key)} in ${where}`);
    auths.set(key, { auth: optionalString(entry.auth, 'auth', key, where), identityToken: optionalString(entry.identitytoken, 'identitytoken', key, where) });
  }
  return auths;
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidConfigError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function optionalString(value: unknown, field: string, key: string, where: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new InvalidConfigError(`"${field}" of entry ${JSON.stringify(key)} in ${where} is not a string`);
  return value;
}
