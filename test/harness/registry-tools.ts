/**
 * The outside programs the registry tests need (docker-registry, skopeo, openssl, a bcrypt
 * hasher), whether they are here, and what to do when they are not: skip with an install hint
 * on a developer's machine, fail under CI=true (a CI that silently skips proves nothing).
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export const INSTALL_HINT = 'install them with `bash .ci/registry-deps.sh` (apt-get install docker-registry skopeo openssl; bcrypt comes from perl or apache2-utils)';

/** Whether a program is on PATH (or an absolute path that is executable). */
export function findProgram(name: string): string | undefined {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '/usr/bin:/bin').split(':').filter((d) => d !== '').map((d) => path.join(d, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next directory
    }
  }
  return undefined;
}

/**
 * docker-registry's htpasswd backend accepts bcrypt entries only. Debian gives several ways to
 * make them: apache2-utils' `htpasswd -B`, or Perl's crypt(), which goes through libxcrypt
 * (essential packages perl-base and libcrypt1) and knows bcrypt's $2b$ prefix.
 */
export type BcryptMethod = 'htpasswd' | 'perl-crypt';

let bcryptMethodCache: BcryptMethod | null | undefined;

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function perlBcrypt(password: string): string | undefined {
  // A 22-character salt in bcrypt's own alphabet; the last character carries only 2 of the
  // salt's bits, so it is one whose 4 low bits are zero (the canonical form).
  const bytes = randomBytes(21);
  let salt = '';
  for (const b of bytes) salt += BCRYPT_ALPHABET[b % 64];
  salt += '.Oeu'[bytes[0] % 4];
  const result = spawnSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2b$05$${salt}`], { encoding: 'utf8' });
  if (result.status !== 0) return undefined;
  return /^\$2[aby]\$05\$[./A-Za-z0-9]{53}$/.test(result.stdout) ? result.stdout : undefined;
}

function htpasswdBcrypt(password: string): string | undefined {
  const result = spawnSync('htpasswd', ['-nbB', '-C', '5', 'u', password], { encoding: 'utf8' });
  if (result.status !== 0) return undefined;
  const hash = result.stdout.trim().slice('u:'.length);
  return hash.startsWith('$2') ? hash : undefined;
}

export function bcryptMethod(): BcryptMethod | undefined {
  if (bcryptMethodCache !== undefined) return bcryptMethodCache ?? undefined;
  let found: BcryptMethod | null = null;
  if (findProgram('htpasswd') !== undefined && htpasswdBcrypt('probe') !== undefined) found = 'htpasswd';
  else if (findProgram('perl') !== undefined && perlBcrypt('probe') !== undefined) found = 'perl-crypt';
  bcryptMethodCache = found;
  return found ?? undefined;
}

/** A bcrypt hash of the password (cost 5: the tests start many registries, keep logins quick). */
export function bcryptHash(password: string): string {
  const method = bcryptMethod();
  const hash = method === 'htpasswd' ? htpasswdBcrypt(password) : method === 'perl-crypt' ? perlBcrypt(password) : undefined;
  if (hash === undefined) throw new Error(`cannot make a bcrypt hash: ${INSTALL_HINT}`);
  return hash;
}

/** The lines of an htpasswd file for the users. */
export function htpasswdFile(users: Readonly<Record<string, string>>): string {
  return Object.entries(users).map(([user, password]) => `${user}:${bcryptHash(password)}\n`).join('');
}

/** What is missing for the registry tests; empty when all is here. */
export function missingRegistryTools(): string[] {
  const missing: string[] = [];
  if (findProgram(REGISTRY_BINARY) === undefined) missing.push('docker-registry');
  if (findProgram('skopeo') === undefined) missing.push('skopeo');
  if (findProgram('openssl') === undefined) missing.push('openssl');
  if (bcryptMethod() === undefined) missing.push('a bcrypt hasher (apache2-utils htpasswd, or perl)');
  return missing;
}

export const IN_CI = process.env.CI === 'true';

/**
 * The `skip` option for a registry suite: a reason when tools are missing on a developer's
 * machine; false in CI even then, so that the suite runs and `assertRegistryTools` fails it.
 */
export function registrySuiteSkip(): string | false {
  const missing = missingRegistryTools();
  if (missing.length === 0 || IN_CI) return false;
  return `missing ${missing.join(', ')}: ${INSTALL_HINT}`;
}

/** Throws with the install hint when a tool is missing (called first in a suite's `before`). */
export function assertRegistryTools(): void {
  const missing = missingRegistryTools();
  if (missing.length > 0) throw new Error(`registry tests need ${missing.join(', ')} (CI=${process.env.CI ?? ''}): ${INSTALL_HINT}`);
}
