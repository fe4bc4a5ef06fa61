/**
 * A throw-away PKI for the test registries, made with the `openssl` CLI once per process: a CA,
 * a server certificate for 127.0.0.1/localhost, and an RSA certificate that signs registry
 * tokens. Every registry a process starts shares it, so a TLS registry starts in milliseconds.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface TestPki {
  readonly dir: string;
  /** PEM of the CA that issued the server and token certificates. */
  readonly caCertFile: string;
  /** A directory with only ca.crt in it: what --cert-dir / --dest-cert-dir / certs.d expect. */
  readonly certDir: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** RSA key (PKCS#8 PEM) and its certificate (issued by the CA) for signing tokens. */
  readonly tokenKeyPem: string;
  /** Base64 DER of the token certificate, as a JWT header's `x5c` carries it. */
  readonly tokenCertDerBase64: string;
}

async function openssl(cwd: string, args: readonly string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { cwd });
  } catch (err) {
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String((err as { stderr: unknown }).stderr) : '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr || String(err)}`);
  }
}

/** Issues a certificate for a new key, signed by the CA in `dir`. */
async function issue(dir: string, name: string, keyArgs: readonly string[], subject: string, extensions: string): Promise<void> {
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  await openssl(dir, ['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  await openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(Date.now() % 1e9 + name.length),
    '-days', '3', '-out', `${name}.crt`, '-extfile', `${name}.ext`,
  ]);
}

function pemToDerBase64(pem: string): string {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem);
  if (m === null) throw new Error('no certificate in PEM');
  return m[1].replace(/\s+/g, '');
}

async function makePki(): Promise<TestPki> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-pki-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  await openssl(dir, [
    'req', '-x509', '-new', ...ec, '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3', '-subj', '/CN=layerpipe test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await Promise.all([
    issue(dir, 'server', ec, '/CN=localhost', [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n')),
    // docker-registry verifies RS256 tokens through libtrust; RSA keys work with every version.
    issue(dir, 'token', ['-newkey', 'rsa:2048'], '/CN=layerpipe test token signer', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n'),
  ]);
  const certDir = path.join(dir, 'certs');
  mkdirSync(certDir);
  writeFileSync(path.join(certDir, 'ca.crt'), readFileSync(path.join(dir, 'ca.crt')));
  return {
    dir,
    caCertFile: path.join(dir, 'ca.crt'),
    certDir,
    serverCertFile: path.join(dir, 'server.crt'),
    serverKeyFile: path.join(dir, 'server.key'),
    tokenKeyPem: readFileSync(path.join(dir, 'token.key'), 'utf8'),
    tokenCertDerBase64: pemToDerBase64(readFileSync(path.join(dir, 'token.crt'), 'utf8')),
  };
}

let pkiPromise: Promise<TestPki> | undefined;

/** The process's test PKI, made on first use. */
export function testPki(): Promise<TestPki> {
  pkiPromise ??= makePki();
  return pkiPromise;
}
