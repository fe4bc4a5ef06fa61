/**
 * certs.d lookup (server/config/certs-d.ts) with certificates made by the real openssl.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { certDirFor, defaultCertsDirs, tlsFilesFor } from '../../server/config/certs-d';
import { InvalidArgumentError, InvalidConfigError } from '../../protocol/errors';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-certs-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A self-signed certificate and its key, PEM. */
function makePair(name: string): { cert: Buffer; key: Buffer } {
  const dir = path.join(root, 'made');
  fs.mkdirSync(dir, { recursive: true });
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
}

let client: { cert: Buffer; key: Buffer };
let other: { cert: Buffer; key: Buffer };
let ca1: Buffer;
let ca2: Buffer;
before(() => {
  client = makePair('client');
  other = makePair('other');
  ca1 = makePair('ca1').cert;
  ca2 = makePair('ca2').cert;
});

let caseNo = 0;
function dirWith(files: Record<string, Buffer | string>): string {
  const dir = path.join(root, `case${++caseNo}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

describe('certs.d', () => {
  it('reads CAs in name order and the client pair from --cert-dir', async () => {
    const certDir = dirWith({ 'b.crt': ca2, 'a.crt': ca1, 'client.cert': client.cert, 'client.key': client.key, 'README': 'ignored' });
    const files = await tlsFilesFor('registry.example.com:5000', { certDir, systemDirs: [] });
    assert.deepEqual(files.ca, [ca1, ca2]);
    assert.deepEqual(files.cert, client.cert);
    assert.deepEqual(files.key, client.key);
  });

  it('finds HOST[:PORT] under the first root that has it, and only there', async () => {
    const first = dirWith({});
    const second = dirWith({});
    fs.mkdirSync(path.join(second, 'localhost:5000'));
    fs.writeFileSync(path.join(second, 'localhost:5000', 'ca.crt'), ca2);
    fs.mkdirSync(path.join(second, 'localhost'));
    fs.writeFileSync(path.join(second, 'localhost', 'ca.crt'), ca1);
    assert.deepEqual((await tlsFilesFor('localhost:5000', { systemDirs: [first, second] })).ca, [ca2]);
    assert.deepEqual((await tlsFilesFor('localhost', { systemDirs: [first, second] })).ca, [ca1]);
    fs.mkdirSync(path.join(first, 'localhost:5000'));
    fs.writeFileSync(path.join(first, 'localhost:5000', 'client.cert'), client.cert);
    fs.writeFileSync(path.join(first, 'localhost:5000', 'client.key'), client.key);
    const files = await tlsFilesFor('localhost:5000', { systemDirs: [first, second] });
    assert.deepEqual(files.ca, [], 'the second root is not merged in');
    assert.deepEqual(files.cert, client.cert);
    assert.equal(await certDirFor('localhost:5000', { systemDirs: [first, second] }), path.join(first, 'localhost:5000'));
  });

  it('answers nothing for a registry without a directory', async () => {
    const files = await tlsFilesFor('nowhere.example.com', { systemDirs: [dirWith({})] });
    assert.deepEqual(files, { ca: [] });
    assert.deepEqual(await tlsFilesFor('x', { certDir: path.join(root, 'missing-dir') }), { ca: [] });
  });

  it('rejects a certificate without its key and a key without its certificate', async () => {
    await assert.rejects(
      tlsFilesFor('r', { certDir: dirWith({ 'client.cert': client.cert }) }),
      (e: unknown) => e instanceof InvalidConfigError && /missing key client\.key/.test(e.message),
    );
    await assert.rejects(
      tlsFilesFor('r', { certDir: dirWith({ 'client.key': client.key, 'ca.crt': ca1 }) }),
      (e: unknown) => e instanceof InvalidConfigError && /missing client certificate client\.cert/.test(e.message),
    );
  });

  it('rejects a key that does not belong to its certificate, without quoting the key', async () => {
    await assert.rejects(
      tlsFilesFor('r', { certDir: dirWith({ 'client.cert': client.cert, 'client.key': other.key }) }),
      (e: unknown) => e instanceof InvalidConfigError && /does not match/.test(e.message) && !e.message.includes('PRIVATE KEY'),
    );
    await assert.rejects(tlsFilesFor('r', { certDir: dirWith({ 'client.cert': 'not a certificate', 'client.key': client.key }) }), InvalidConfigError);
  });

  it('uses the first of several client pairs', async () => {
    const files = await tlsFilesFor('r', { certDir: dirWith({ 'b.cert': other.cert, 'b.key': other.key, 'a.cert': client.cert, 'a.key': client.key }) });
    assert.deepEqual(files.cert, client.cert);
    assert.deepEqual(files.key, client.key);
  });

  it('searches the user directory before /etc by default and refuses path-like hosts', async () => {
    assert.deepEqual(defaultCertsDirs('/home/u'), ['/home/u/.config/containers/certs.d', '/etc/containers/certs.d', '/etc/docker/certs.d']);
    await assert.rejects(tlsFilesFor('../etc', { systemDirs: [root] }), InvalidArgumentError);
    await assert.rejects(tlsFilesFor('a/b', { systemDirs: [root] }), InvalidArgumentError);
  });
});
