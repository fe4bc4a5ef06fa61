/**
 * containers-certs.d(5): per-registry TLS files. In a HOST[:PORT] directory, *.crt files are
 * extra CA certificates (to be trusted in addition to the system's), and NAME.cert with
 * NAME.key is a client certificate and its key.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Dirent } from 'node:fs';
import path from 'node:path';
import { configFs as fs } from './config-files';
import { InvalidArgumentError, InvalidConfigError, errorMessage } from '../../protocol/errors';
import { homeDirectory } from './home';

export interface RegistryTlsFiles {
  /** PEM contents of every *.crt, in file-name order. Add them to the system roots, do not replace those. */
  ca: Buffer[];
  /** The first client pair in file-name order (Go's TLS client also presents the first one). */
  cert?: Buffer;
  key?: Buffer;
}

export interface TlsFilesOptions {
  /** --cert-dir: this directory itself holds the files (no HOST[:PORT] below it). */
  certDir?: string;
  /**
   * certs.d roots searched in order; the first with a HOST[:PORT] directory is the only one
   * used. Default: $HOME/.config/containers/certs.d, /etc/containers/certs.d, /etc/docker/certs.d.
   */
  systemDirs?: string[];
  homeDir?: string;
}

/** The certs.d roots containers tools search, user's first. */
export function defaultCertsDirs(homeDir?: string): string[] {
  const home = homeDir ?? homeDirectory();
  return [path.join(home, '.config', 'containers', 'certs.d'), '/etc/containers/certs.d', '/etc/docker/certs.d'];
}

/** The directory whose files apply to hostPort, or undefined when none exists. */
export async function certDirFor(hostPort: string, opts: TlsFilesOptions): Promise<string | undefined> {
  if (opts.certDir !== undefined && opts.certDir !== '') return opts.certDir;
  if (hostPort === '' || hostPort.includes('/') || hostPort === '.' || hostPort === '..' || hostPort.includes('\0')) {
    throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(hostPort)} for a certs.d lookup`);
  }
  for (const root of opts.systemDirs ?? defaultCertsDirs(opts.homeDir)) {
    const dir = path.join(root, hostPort);
    try {
      await fs.stat(dir);
      return dir;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM') continue;
      throw new InvalidConfigError(`reading certificates directory ${dir}: ${errorMessage(err)}`, { cause: err });
    }
  }
  return undefined;
}

/**
 * The TLS files for a registry. A missing or unreadable (permission) directory means none. A
 * NAME.cert without NAME.key, or the reverse, is an error.
 */
export async function tlsFilesFor(hostPort: string, opts: TlsFilesOptions): Promise<RegistryTlsFiles> {
  const dir = await certDirFor(hostPort, opts);
  const result: RegistryTlsFiles = { ca: [] };
  if (dir === undefined) return result;
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM') return result;
    throw new InvalidConfigError(`reading certificates directory ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  const names = entries.map((e) => e.name).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const present = new Set(names);
  const read = async (name: string): Promise<Buffer | undefined> => {
    try {
      return await fs.readFile(path.join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // Removed since the listing.
      throw new InvalidConfigError(`reading ${path.join(dir, name)}: ${errorMessage(err)}`, { cause: err });
    }
  };
  for (const name of names) {
    if (name.endsWith('.crt')) {
      const ca = await read(name);
      if (ca !== undefined) result.ca.push(ca);
    } else if (name.endsWith('.cert')) {
      const keyName = `${name.slice(0, -'.cert'.length)}.key`;
      if (!present.has(keyName)) {
        throw new InvalidConfigError(`missing key ${keyName} for client certificate ${name} in ${dir} (CA certificates use the extension .crt)`);
      }
      if (result.cert !== undefined) continue;
      const cert = await read(name);
      const key = await read(keyName);
      if (cert !== undefined && key !== undefined) {
        checkPair(cert, key, path.join(dir, name), path.join(dir, keyName));
        result.cert = cert;
        result.key = key;
      }
    } else if (name.endsWith('.key')) {
      const certName = `${name.slice(0, -'.key'.length)}.cert`;
      if (!present.has(certName)) throw new InvalidConfigError(`missing client certificate ${certName} for key ${name} in ${dir}`);
    }
  }
  return result;
}

/** Fails early, as Go's LoadX509KeyPair does, on an unreadable or mismatched pair. The message never quotes the key. */
function checkPair(cert: Buffer, key: Buffer, certPath: string, keyPath: string): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (err) {
    throw new InvalidConfigError(`client certificate ${certPath} is not a PEM certificate: ${errorMessage(err)}`, { cause: err });
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new InvalidConfigError(`client key ${keyPath} is not a PEM private key`, { cause: err });
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new InvalidConfigError(`client key ${keyPath} does not match certificate ${certPath}`);
}
