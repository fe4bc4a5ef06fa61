/**
 * The public keys a signedBy requirement accepts (keyType GPGKeys): read from keyPath, each of
 * keyPaths, or keyData; each source a binary keyring (gpg --export) or ASCII-armored
 * (gpg --export --armor), possibly several armored blocks one after another. Read when the
 * requirement is evaluated, as containers/image reads them, so a key file can be replaced
 * without restarting.
 */
import type * as openpgp from 'openpgp';
import { openpgpModule } from './openpgp';
import { systemErrorText } from '../../protocol/errors';
import type { KeySource } from './types';

/** A key file larger than this is not a keyring anyone means. */
const MAX_KEYRING_SIZE = 16 * 1024 * 1024;

/** Thrown when the keys cannot be read: the requirement rejects with this message. */
export class KeyringError extends Error {}

const ARMOR_BLOCK = /-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g;

async function keysFrom(data: Buffer, where: string): Promise<openpgp.Key[]> {
  const text = data.subarray(0, 64).toString('latin1');
  try {
    if (/^\s*-----BEGIN /.test(text)) {
      const blocks = data.toString('utf8').match(ARMOR_BLOCK) ?? [];
      const out: openpgp.Key[] = [];
      for (const block of blocks) out.push(...(await openpgpModule().readKeys({ armoredKeys: block })));
      return out;
    }
    return await openpgpModule().readKeys({ binaryKeys: new Uint8Array(data) });
  } catch (err) {
    throw new KeyringError(`reading public keys from ${where}: ${(err as Error).message}`);
  }
}

async function readKeyFile(file: string): Promise<Buffer> {
  try {
    // node:fs/promises loads with the first keyring read, not with every proxy (the policy code is always loaded).
    const data = await (require('node:fs/promises') as typeof import('node:fs/promises')).readFile(file);
    if (data.length > MAX_KEYRING_SIZE) throw new KeyringError(`key file ${file} is larger than ${MAX_KEYRING_SIZE} bytes`);
    return data;
  } catch (err) {
    if (err instanceof KeyringError) throw err;
    throw new KeyringError(`open ${file}: ${systemErrorText(err).replace(/^[A-Z]+: /, '')}`);
  }
}

/** All keys of a requirement's key source; KeyringError when a file is missing or not a keyring. */
export async function loadKeys(source: KeySource): Promise<openpgp.Key[]> {
  switch (source.kind) {
    case 'keyPath':
      return keysFrom(await readKeyFile(source.path), source.path);
    case 'keyPaths': {
      const out: openpgp.Key[] = [];
      for (const p of source.paths) out.push(...(await keysFrom(await readKeyFile(p), p)));
      return out;
    }
    case 'keyData':
      return keysFrom(source.data, 'keyData');
  }
}

/** Upper-case hex fingerprint, the form gpg and containers/image print. */
export function fingerprintOf(key: openpgp.Key | openpgp.Subkey): string {
  return key.getFingerprint().toUpperCase();
}
