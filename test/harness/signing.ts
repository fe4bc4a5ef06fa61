/**
 * Real simple signing for tests: GnuPG keys in a temporary GNUPGHOME (no passphrase), public
 * keyrings exported binary and armored, and helpers to sign with skopeo (`copy --sign-by` into
 * a registries.d lookaside, `standalone-sign` for a given identity).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestKey {
  readonly fingerprint: string;
  /** Binary keyring (gpg --export). */
  readonly binary: string;
  /** ASCII-armored keyring (gpg --export --armor). */
  readonly armored: string;
}

export interface TestKeys {
  readonly gnupgHome: string;
  /** Environment for gpg and skopeo. */
  readonly env: NodeJS.ProcessEnv;
  /** Signs with its primary key. */
  readonly a: TestKey;
  /** Another primary key. */
  readonly b: TestKey;
  /** A certify-only primary key with a signing subkey: gpg signs with the subkey. */
  readonly c: TestKey;
  /** Stops the gpg-agent this GNUPGHOME started. */
  stopAgent(): void;
}

function gpg(env: NodeJS.ProcessEnv, args: readonly string[]): Buffer {
  return execFileSync('gpg', ['--batch', '--no-tty', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

function fingerprintOf(env: NodeJS.ProcessEnv, email: string): string {
  const out = gpg(env, ['--with-colons', '--list-keys', email]).toString('utf8');
  const line = out.split('\n').find((l) => l.startsWith('fpr:'));
  if (line === undefined) throw new Error(`no key for ${email}`);
  return line.split(':')[9]!;
}

function exportKey(env: NodeJS.ProcessEnv, dir: string, name: string, fingerprint: string): TestKey {
  const binary = path.join(dir, `${name}.gpg`);
  const armored = path.join(dir, `${name}.asc`);
  writeFileSync(binary, gpg(env, ['--export', fingerprint]));
  writeFileSync(armored, gpg(env, ['--export', '--armor', fingerprint]));
  return { fingerprint, binary, armored };
}

/** Makes keys a, b and c under `dir`. */
export function createTestKeys(dir: string): TestKeys {
  const gnupgHome = path.join(dir, 'gnupg');
  mkdirSync(gnupgHome, { recursive: true, mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: gnupgHome };
  for (const who of ['a', 'b']) gpg(env, ['--passphrase', '', '--quick-gen-key', `Key ${who} <${who}@layerpipe.test>`, 'ed25519', 'sign', 'never']);
  gpg(env, ['--passphrase', '', '--quick-gen-key', 'Key c <c@layerpipe.test>', 'ed25519', 'cert', 'never']);
  const cFpr = fingerprintOf(env, 'c@layerpipe.test');
  gpg(env, ['--passphrase', '', '--quick-add-key', cFpr, 'ed25519', 'sign', 'never']);
  return {
    gnupgHome,
    env,
    a: exportKey(env, dir, 'a', fingerprintOf(env, 'a@layerpipe.test')),
    b: exportKey(env, dir, 'b', fingerprintOf(env, 'b@layerpipe.test')),
    c: exportKey(env, dir, 'c', cFpr),
    stopAgent: () => {
      try {
        execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env, stdio: 'ignore' });
      } catch {
        // no agent was started
      }
    },
  };
}

/** A simple-signing signature of `manifestFile` claiming `identity`, made with skopeo standalone-sign. */
export function standaloneSign(keys: TestKeys, manifestFile: string, identity: string, fingerprint: string, out: string): void {
  execFileSync('skopeo', ['standalone-sign', manifestFile, identity, fingerprint, '-o', out], { env: keys.env, stdio: ['ignore', 'pipe', 'pipe'] });
}
