/**
 * Credentials and configuration files for registry tests, in the formats containers tools
 * read: auth files (containers-auth.json(5)), docker-credential-NAME helper programs, and
 * registries.conf(5) with mirrors.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface UserPassword {
  readonly user: string;
  readonly password: string;
}

export function splitCreds(creds: string): UserPassword {
  const colon = creds.indexOf(':');
  return { user: creds.slice(0, colon), password: creds.slice(colon + 1) };
}

/** An auth file with `auths` entries (base64 "user:password") and optional credHelpers. */
export function writeAuthFile(file: string, auths: Readonly<Record<string, UserPassword>>, credHelpers: Readonly<Record<string, string>> = {}): string {
  mkdirSync(path.dirname(file), { recursive: true });
  const entries = Object.fromEntries(Object.entries(auths).map(([host, c]) => [host, { auth: Buffer.from(`${c.user}:${c.password}`).toString('base64') }]));
  writeFileSync(file, JSON.stringify({ auths: entries, ...(Object.keys(credHelpers).length > 0 ? { credHelpers } : {}) }, null, 2));
  return file;
}

export interface CredentialHelper {
  /** The directory to put first on PATH. */
  readonly binDir: string;
  readonly name: string;
  /** "ACTION SERVER" lines, one per call the helper answered. */
  calls(): string[];
}

/**
 * Writes `docker-credential-NAME` into binDir: `get` reads the server from stdin and prints
 * the credentials stored for it, or says "credentials not found" and fails, as real helpers do.
 */
export function writeCredentialHelper(binDir: string, name: string, byServer: Readonly<Record<string, UserPassword>>): CredentialHelper {
  mkdirSync(binDir, { recursive: true });
  const logFile = path.join(binDir, `${name}.calls`);
  writeFileSync(logFile, '');
  const cases = Object.entries(byServer)
    .map(([server, c]) => `  ${shellQuote(server)}) printf '%s' ${shellQuote(JSON.stringify({ ServerURL: server, Username: c.user, Secret: c.password }))} ;;`)
    .join('\n');
  const script = [
    '#!/bin/sh',
    '# A docker credential helper for tests: answers `get` from a fixed table.',
    'server=$(cat)',
    `printf '%s %s\\n' "$1" "$server" >> ${shellQuote(logFile)}`,
    'if [ "$1" != get ]; then exit 0; fi',
    'case "$server" in',
    cases,
    '  *) echo "credentials not found in native keychain"; exit 1 ;;',
    'esac',
    '',
  ].join('\n');
  const file = path.join(binDir, `docker-credential-${name}`);
  writeFileSync(file, script);
  chmodSync(file, 0o755);
  return {
    binDir,
    name,
    calls: () => readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== ''),
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface RegistriesConfEntry {
  /** host:port (optionally with a namespace) the entry is about. */
  readonly location: string;
  readonly insecure?: boolean;
  readonly blocked?: boolean;
  readonly mirrors?: readonly { readonly location: string; readonly insecure?: boolean }[];
}

const toml = (s: string): string => JSON.stringify(s);

/** A registries.conf (v2 format) with the entries and, optionally, credential helpers. */
export function writeRegistriesConf(file: string, entries: readonly RegistriesConfEntry[], credentialHelpers?: readonly string[]): string {
  const lines: string[] = ['unqualified-search-registries = []'];
  if (credentialHelpers !== undefined) lines.push(`credential-helpers = [${credentialHelpers.map(toml).join(', ')}]`);
  for (const entry of entries) {
    lines.push('', '[[registry]]', `location = ${toml(entry.location)}`);
    if (entry.insecure !== undefined) lines.push(`insecure = ${entry.insecure}`);
    if (entry.blocked !== undefined) lines.push(`blocked = ${entry.blocked}`);
    for (const mirror of entry.mirrors ?? []) {
      lines.push('', '[[registry.mirror]]', `location = ${toml(mirror.location)}`);
      if (mirror.insecure !== undefined) lines.push(`insecure = ${mirror.insecure}`);
    }
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}
