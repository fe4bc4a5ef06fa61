/**
 * One containers-registries.conf(5) file: TOML to a checked, normalised description.
 * Version 1 files ([registries.search] / .insecure / .block) are converted to version 2, as
 * containers tools do, except in drop-ins, which must be version 2.
 */
import { parse as parseToml, TomlError } from 'smol-toml';
import { InvalidConfigError } from '../../protocol/errors';
import { isRegistryHost } from '../reference/docker-reference';
import { aliasNameProblem, aliasValueProblem, type ShortNameMode } from '../reference/short-names';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';
export type { ShortNameMode };

export interface RegistryMirror {
  readonly location: string;
  readonly insecure: boolean;
  /** Which pulls may use this mirror; "all" when unset. */
  readonly pullFromMirror: PullFromMirror;
}

/** A [[registry]] table after defaults and checks. */
export interface RegistryEntry {
  /** What image names are matched against: host[:port][/path], or "*.domain". */
  readonly prefix: string;
  /** Where the prefix-rooted namespace really lives; "" only for a wildcard prefix (no rewrite). */
  readonly location: string;
  readonly insecure: boolean;
  readonly blocked: boolean;
  readonly mirrorByDigestOnly: boolean;
  readonly mirrors: readonly RegistryMirror[];
}

/** A file's content; undefined fields were absent (and so do not override earlier files). */
export interface RegistriesConfFile {
  readonly path: string;
  /** Unique prefixes (first table wins within a file), sorted by prefix. */
  readonly registries: readonly RegistryEntry[];
  readonly unqualifiedSearchRegistries: readonly string[] | undefined;
  readonly credentialHelpers: readonly string[] | undefined;
  readonly shortNameMode: ShortNameMode | undefined;
  /** Short name -> fully-qualified name; "" erases an alias set by an earlier file. */
  readonly aliases: ReadonlyMap<string, string>;
}

const V2_KEYS = ['registry', 'unqualified-search-registries', 'credential-helpers', 'short-name-mode', 'additional-layer-store-auth-helper', 'aliases'];

/**
 * A comment line: what TOML allows in one (no control character but tab), from `#` to the line's end.
 * Only a multi-line string could make such a line something else.
 */
const COMMENT_LINE = /^[ \t]*#[^\x00-\x08\x0a-\x1f\x7f]*$/gm;

/**
 * The text with its comment lines blanked (their line breaks kept, so errors name the same line),
 * unless it has a multi-line string. smol-toml walks a comment one character at a time, which at
 * a proxy's first image (code not yet optimised) took ~1 ms for Debian's registries.conf and
 * shortnames.conf, mostly comments; the regular expression does it natively. A comment TOML
 * forbids (a control character in it) is left for the parser to report.
 */
function blankCommentLines(text: string): string {
  return text.includes('"""') || text.includes("'''") ? text : text.replace(COMMENT_LINE, '');
}

export function parseRegistriesConfFile(text: string, path: string, opts: { requireV2: boolean }): RegistriesConfFile {
  let toml: Record<string, unknown>;
  try {
    toml = parseToml(blankCommentLines(text)) as Record<string, unknown>;
  } catch (err) {
    const why = err instanceof TomlError ? `line ${err.line}, column ${err.column}: ${err.message.split('\n')[0] ?? ''}` : String(err);
    throw new InvalidConfigError(`registries configuration ${path} is not valid TOML (${why})`, { cause: err });
  }
  const fail: (message: string) => never = (message) => {
    throw new InvalidConfigError(`registries configuration ${path}: ${message}`);
  };

  const hasV1 = toml.registries !== undefined;
  if (hasV1) {
    if (opts.requireV2) fail('drop-in files must be in the version 2 format, this one is version 1 ([registries.*] tables)');
    if (V2_KEYS.some((k) => toml[k] !== undefined)) fail('mixes the version 1 ([registries.*]) and version 2 formats');
    toml = convertV1(toml, fail);
  }

  const registries = uniqueSorted(tableArray(toml.registry, 'registry', fail).map((t, i) => parseRegistryTable(t, `[[registry]] #${i + 1}`, fail)));
  checkConflicts(registries, fail);

  let unqualifiedSearchRegistries: string[] | undefined;
  if (toml['unqualified-search-registries'] !== undefined) {
    unqualifiedSearchRegistries = stringArray(toml['unqualified-search-registries'], 'unqualified-search-registries', fail).map((r) => {
      const host = trimLocation(r, fail);
      if (!isRegistryHost(host)) fail(`invalid unqualified-search-registries entry ${JSON.stringify(r)}, expected host[:port]`);
      return host;
    });
  }
  const credentialHelpers = toml['credential-helpers'] === undefined ? undefined : stringArray(toml['credential-helpers'], 'credential-helpers', fail);
  if (credentialHelpers?.some((h) => h === '' || h.includes('/'))) fail('credential-helpers entries must be helper names (the part after "docker-credential-")');

  let shortNameMode: ShortNameMode | undefined;
  const mode = optionalString(toml['short-name-mode'], 'short-name-mode', fail);
  if (mode !== undefined && mode !== '') {
    if (mode !== 'enforcing' && mode !== 'permissive' && mode !== 'disabled') fail(`invalid short-name-mode ${JSON.stringify(mode)}`);
    shortNameMode = mode as ShortNameMode;
  }

  const aliases = new Map<string, string>();
  if (toml.aliases !== undefined) {
    for (const [name, value] of Object.entries(asTable(toml.aliases, '[aliases]', fail))) {
      if (typeof value !== 'string') fail(`alias ${JSON.stringify(name)} is not a string`);
      checkAlias(name, value as string, fail);
      aliases.set(name, value as string);
    }
  }
  return { path, registries, unqualifiedSearchRegistries, credentialHelpers, shortNameMode, aliases };
}

/** [registries.search/insecure/block] lists become the equivalent version 2 settings. */
function convertV1(toml: Record<string, unknown>, fail: (m: string) => never): Record<string, unknown> {
  const v1 = asTable(toml.registries, '[registries]', fail);
  const list = (name: string): string[] => {
    if (v1[name] === undefined) return [];
    const t = asTable(v1[name], `[registries.${name}]`, fail);
    return t.registries === undefined ? [] : stringArray(t.registries, `registries.${name}.registries`, fail);
  };
  const byLocation = new Map<string, { location: string; insecure: boolean; blocked: boolean }>();
  const entry = (raw: string) => {
    const location = trimLocation(raw, fail);
    let e = byLocation.get(location);
    if (e === undefined) {
      e = { location, insecure: false, blocked: false };
      byLocation.set(location, e);
    }
    return e;
  };
  for (const r of list('block')) entry(r).blocked = true;
  for (const r of list('insecure')) entry(r).insecure = true;
  const v1Search = v1.search === undefined ? undefined : asTable(v1.search, '[registries.search]', fail).registries;
  return {
    registry: [...byLocation.values()],
    ...(v1Search === undefined ? {} : { 'unqualified-search-registries': list('search') }),
  };
}

function parseRegistryTable(t: Record<string, unknown>, where: string, fail: (m: string) => never): RegistryEntry {
  const w: (m: string) => never = (m) => fail(`${where}: ${m}`);
  const location = trimLocation(optionalString(t.location, 'location', w) ?? '', w);
  const rawPrefix = optionalString(t.prefix, 'prefix', w);
  let prefix: string;
  if (rawPrefix === undefined || rawPrefix === '') {
    if (location === '') w('both location and prefix are unset');
    prefix = location;
  } else {
    prefix = trimLocation(rawPrefix, w);
    if (!prefix.startsWith('*.') && location === '') w(`location is unset and prefix ${JSON.stringify(prefix)} is not of the form *.example.com`);
  }
  if (prefix.startsWith('*.') && /[/@:]/.test(prefix)) w(`wildcard prefix ${JSON.stringify(prefix)} must be of the form *.example.com`);
  // Like containers tools, accept other "*" placements ("example.*.com"); they just never match.
  if (t['pull-from-mirror'] !== undefined) w('pull-from-mirror may only be set on a [[registry.mirror]]');
  const mirrorByDigestOnly = optionalBool(t['mirror-by-digest-only'], 'mirror-by-digest-only', w);
  const mirrors = tableArray(t.mirror, 'mirror', w).map((m, i): RegistryMirror => {
    const mw: (msg: string) => never = (msg) => w(`mirror #${i + 1}: ${msg}`);
    const mirrorLocation = trimLocation(optionalString(m.location, 'location', mw) ?? '', mw);
    if (mirrorLocation === '') mw('location is unset');
    const pull = optionalString(m['pull-from-mirror'], 'pull-from-mirror', mw) ?? '';
    if (pull !== '' && pull !== 'all' && pull !== 'digest-only' && pull !== 'tag-only') mw(`unsupported pull-from-mirror value ${JSON.stringify(pull)}`);
    if (pull !== '' && mirrorByDigestOnly) mw('pull-from-mirror can not be combined with the registry\'s mirror-by-digest-only');
    return { location: mirrorLocation, insecure: optionalBool(m.insecure, 'insecure', mw), pullFromMirror: pull === '' ? 'all' : (pull as PullFromMirror) };
  });
  return {
    prefix,
    location,
    insecure: optionalBool(t.insecure, 'insecure', w),
    blocked: optionalBool(t.blocked, 'blocked', w),
    mirrorByDigestOnly,
    mirrors,
  };
}

/** Locations and prefixes are names, not URLs; trailing "/" are dropped. */
function trimLocation(value: string, fail: (m: string) => never): string {
  // A loop, not /\/+$/: that regex is quadratic on many slashes not at the end.
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === 0x2f) end--;
  const trimmed = value.slice(0, end);
  if (/^https?:\/\//.test(trimmed)) fail(`invalid location ${JSON.stringify(value)}: URI schemes are not supported`);
  return trimmed;
}

/** Tables naming the same physical registry must agree on insecure and blocked. */
function checkConflicts(registries: readonly RegistryEntry[], fail: (m: string) => never): void {
  const seen = new Map<string, RegistryEntry>();
  for (const r of registries) {
    const key = r.location === '' ? r.prefix : r.location;
    const other = seen.get(key);
    if (other === undefined) {
      seen.set(key, r);
      continue;
    }
    if (other.insecure !== r.insecure) fail(`registry ${JSON.stringify(key)} is defined multiple times with conflicting 'insecure' settings`);
    if (other.blocked !== r.blocked) fail(`registry ${JSON.stringify(key)} is defined multiple times with conflicting 'blocked' settings`);
  }
}

/** Within one file the first table for a prefix wins; later ones are ignored, as containers tools do. */
function uniqueSorted(registries: RegistryEntry[]): RegistryEntry[] {
  const byPrefix = new Map<string, RegistryEntry>();
  for (const r of registries) if (!byPrefix.has(r.prefix)) byPrefix.set(r.prefix, r);
  return [...byPrefix.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}

/** Names and values as the man page allows them: a short name -> a fully-qualified name, neither with tag or digest. */
function checkAlias(name: string, value: string, fail: (m: string) => never): void {
  const nameProblem = aliasNameProblem(name);
  if (nameProblem !== undefined) fail(`alias ${JSON.stringify(name)}: the name ${nameProblem}`);
  if (value === '') return; // Erases an alias an earlier file set.
  const valueProblem = aliasValueProblem(value);
  if (valueProblem !== undefined) fail(`alias ${JSON.stringify(name)}: the value ${JSON.stringify(value)} ${valueProblem}`);
}

function asTable(value: unknown, what: string, fail: (m: string) => never): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) fail(`${what} must be a table`);
  return value as Record<string, unknown>;
}

function tableArray(value: unknown, what: string, fail: (m: string) => never): Record<string, unknown>[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) fail(`${what} must be an array of tables ([[${what}]])`);
  return (value as unknown[]).map((v) => asTable(v, `[[${what}]]`, fail));
}

function stringArray(value: unknown, what: string, fail: (m: string) => never): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) fail(`${what} must be an array of strings`);
  return [...(value as string[])];
}

function optionalString(value: unknown, what: string, fail: (m: string) => never): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') fail(`${what} must be a string`);
  return value as string;
}

function optionalBool(value: unknown, what: string, fail: (m: string) => never): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') fail(`${what} must be true or false`);
  return value as boolean;
}
