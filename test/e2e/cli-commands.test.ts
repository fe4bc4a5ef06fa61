/**
 * The command line itself: every command's --help/-h (its own usage, exit 0), unknown flags
 * (exit 2 everywhere, version included), `blob` (verified bytes to stdout or, atomically, to
 * -o FILE; a digest mismatch exits 1 and leaves no file) and `list-tags` on a docker-archive:
 * (equal to skopeo list-tags) and on transports skopeo has no tag listing for; the proxy
 * refusing an fd that is not its socket; error messages (file system, retries, plain HTTP).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildRealArchives, type RealArchives } from '../harness/archive-fixtures';
import { makeLayer, writeOciImage } from '../harness/oci-builder';

const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'layerpipe');
const COMMANDS = ['experimental-image-proxy', 'serve', 'inspect', 'blob', 'list-tags', 'version'];

function run(args: readonly string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(BIN, args, { timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-cli-commands-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('help and usage errors', () => {
  it('layerpipe --help lists every command; no command at all is a usage error', () => {
    const help = run(['--help']);
    assert.equal(help.status, 0);
    for (const c of COMMANDS) assert.match(help.stdout.toString(), new RegExp(`^  ${c} `, 'm'));
    assert.equal(run([]).status, 2);
  });

  it('every command prints its own usage and flags for --help and -h, exit 0', () => {
    for (const c of COMMANDS) {
      for (const flag of ['--help', '-h']) {
        const r = run([c, flag]);
        assert.equal(r.status, 0, `${c} ${flag}: ${r.stderr}`);
        const text = r.stdout.toString();
        assert.match(text, new RegExp(`^Usage: layerpipe ${c}`), c);
        assert.match(text, /-h, --help/, c);
      }
    }
    assert.match(run(['inspect', '--help']).stdout.toString(), /-f, --format VALUE/);
    assert.match(run(['blob', '-h']).stdout.toString(), /-o, --output VALUE/);
    assert.match(run(['help', 'list-tags']).stdout.toString(), /^Usage: layerpipe list-tags/);
  });

  it('an unknown flag exits 2 for every command, with the way to the help', () => {
    for (const c of COMMANDS) {
      for (const flag of ['--foo', '-Z']) {
        const r = run([c, flag]);
        assert.equal(r.status, 2, `${c} ${flag}`);
        assert.match(r.stderr, /unknown (shorthand )?flag/, c);
        assert.match(r.stderr, new RegExp(`Run 'layerpipe ${c} --help'`), c);
      }
    }
    assert.equal(run(['no-such-command']).status, 2);
  });

  it('short flags take their value joined, after =, or as the next argument', () => {
    const image = `oci:${tmp}/oci:latest`;
    writeOciImage(path.join(tmp, 'oci'), { layers: [makeLayer({ 'x': 'x' })] });
    for (const args of [['-f', '{{.Os}}'], ['-f={{.Os}}'], ['-f{{.Os}}'], ['--format={{.Os}}']]) {
      const r = run(['inspect', ...args, image]);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout.toString(), 'linux\n');
    }
  });
});

describe('blob', () => {
  const layer = makeLayer({ 'hello.txt': 'hello\n', 'big.bin': Buffer.alloc(300_000, 7) });
  const layout = path.join(tmp, 'blobs');
  const image = `oci:${layout}:latest`;
  let config: Buffer;
  before(() => {
    config = writeOciImage(layout, { layers: [layer] }).config;
  });

  it('streams a layer or the config to stdout, verified', () => {
    const r = run(['blob', '--insecure-policy', image, layer.digest]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.equals(layer.compressed));
    const c = run(['blob', '--insecure-policy', image, sha256(config)]);
    assert.equal(c.status, 0, c.stderr);
    assert.ok(c.stdout.equals(config));
  });

  it('-o FILE writes the blob through a temporary file renamed into place', () => {
    const out = path.join(tmp, 'layer.tar.gz');
    writeFileSync(out, 'old contents');
    const r = run(['blob', '--insecure-policy', '-o', out, image, layer.digest]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.length, 0);
    assert.ok(readFileSync(out).equals(layer.compressed));
    assert.deepEqual(readdirSync(tmp).filter((f) => f.endsWith('.tmp')), []);
  });

  it('a blob whose bytes do not match its digest: exit 1, a clear message, FILE untouched, no temporary file left', () => {
    const corrupt = path.join(tmp, 'corrupt');
    writeOciImage(corrupt, { layers: [layer] });
    const blobFile = path.join(corrupt, 'blobs', 'sha256', layer.digest.slice(7));
    const bad = Buffer.from(layer.compressed);
    bad[bad.length - 10] ^= 0xff;
    writeFileSync(blobFile, bad);
    const out = path.join(tmp, 'never.bin');
    const r = run(['blob', '--insecure-policy', '-o', out, `oci:${corrupt}:latest`, layer.digest]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`layerpipe blob: corrupted blob, expecting ${layer.digest}`));
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(tmp).filter((f) => f.endsWith('.tmp')), []);
    const toStdout = run(['blob', '--insecure-policy', `oci:${corrupt}:latest`, layer.digest]);
    assert.equal(toStdout.status, 1);
    assert.match(toStdout.stderr, /corrupted blob/);
  });

  it('usage: two arguments and a valid digest', () => {
    assert.equal(run(['blob', image]).status, 2);
    const r = run(['blob', '--insecure-policy', image, 'sha256:nothex']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /digest/);
  });
});

describe('list-tags', () => {
  let archives: RealArchives;
  before(() => {
    archives = buildRealArchives();
  });
  after(() => rmSync(archives.dir, { recursive: true, force: true }));

  it('docker-archive: prints what skopeo list-tags prints', () => {
    for (const file of [archives.dockerSingle, archives.dockerMulti]) {
      const theirs = spawnSync('skopeo', ['list-tags', `docker-archive:${file}`], { encoding: 'utf8' });
      assert.equal(theirs.status, 0, theirs.stderr);
      const ours = run(['list-tags', `docker-archive:${file}`]);
      assert.equal(ours.status, 0, ours.stderr);
      assert.equal(ours.stdout.toString(), theirs.stdout);
    }
  });

  it('transports skopeo lists no tags for are refused, exit 1', () => {
    for (const name of [`oci:${tmp}/oci`, `dir:${tmp}`, `oci-archive:${archives.ociSingle}`]) {
      const r = run(['list-tags', name]);
      assert.equal(r.status, 1, name);
      assert.match(r.stderr, /list-tags supports docker:\/\/ and docker-archive: only/);
    }
  });
});

describe('experimental-image-proxy needs its SOCK_SEQPACKET socket', () => {
  const SENTENCE = /not a SOCK_SEQPACKET socket\. This command is started by a client program, which passes it one end of a SOCK_SEQPACKET socketpair\(2\)/;

  function proxy(stdio: (number | 'pipe' | 'ignore')[], extra: readonly string[] = []): { status: number | null; stderr: string } {
    const r = spawnSync(BIN, ['experimental-image-proxy', '--insecure-policy', ...extra], { stdio, encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stderr: r.stderr };
  }

  it('stdin a stream socket or /dev/null, --sockfd 5 on a regular file or a closed fd: exit 2 with the sentence', () => {
    const devNull = openSync('/dev/null', 'r');
    const file = openSync(__filename, 'r');
    try {
      for (const [stdio, extra, what] of [
        [['pipe', 'pipe', 'pipe'], [], /fd 0 is a SOCK_STREAM socket/], // what Node's 'pipe' is
        [[devNull, 'pipe', 'pipe'], [], /fd 0 is a character device/],
        [['pipe', 'pipe', 'pipe', 'ignore', 'ignore', file], ['--sockfd', '5'], /fd 5 is a regular file/],
        [['pipe', 'pipe', 'pipe'], ['--sockfd', '200'], /fd 200 is not open/],
      ] as [(number | 'pipe' | 'ignore')[], string[], RegExp][]) {
        const r = proxy(stdio, extra);
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, what);
        assert.match(r.stderr, SENTENCE);
      }
    } finally {
      closeSync(devNull);
      closeSync(file);
    }
  });

  it('stdin a pipe (from the shell): exit 2 with the sentence', () => {
    const r = spawnSync('sh', ['-c', 'echo "{}" | "$0" experimental-image-proxy --insecure-policy', BIN], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /fd 0 is a pipe/);
    assert.match(r.stderr, SENTENCE);
  });

  it('stdin a terminal: exit 2 with the sentence', () => {
    // A pseudo-terminal from Python's standard library stands in for a person's shell.
    const script = 'import os, pty, subprocess, sys\nm, s = pty.openpty()\nr = subprocess.run(sys.argv[1:], stdin=s, capture_output=True)\nsys.stderr.write(r.stderr.decode())\nsys.exit(r.returncode)';
    const r = spawnSync('python3', ['-c', script, BIN, 'experimental-image-proxy', '--insecure-policy'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /fd 0 is a terminal/);
    assert.match(r.stderr, SENTENCE);
  });
});

describe('error messages', () => {
  it('file-system errors name the transport and what it expected', () => {
    const empty = mkdtempSync(path.join(tmp, 'empty-'));
    for (const [image, message] of [
      ['oci:/nonexistent-layerpipe', 'oci: /nonexistent-layerpipe: no such directory (expected an OCI layout with index.json)'],
      [`oci:${empty}`, `oci: ${empty}/index.json: no such file or directory (expected an OCI layout with index.json)`],
      [`oci:${__filename}`, `oci: ${__filename}: not a directory (expected an OCI layout with index.json)`],
      ['dir:/nonexistent-layerpipe', 'dir: /nonexistent-layerpipe: no such directory (expected a directory with manifest.json, as skopeo copy writes it)'],
      [`dir:${empty}`, `dir: ${empty}/manifest.json: no such file or directory (expected a directory with manifest.json, as skopeo copy writes it)`],
      ['oci-archive:/nonexistent-layerpipe.tar', 'oci-archive: /nonexistent-layerpipe.tar: no such file or directory (expected a tar archive of an OCI layout)'],
      ['docker-archive:/nonexistent-layerpipe.tar', 'docker-archive: /nonexistent-layerpipe.tar: no such file or directory (expected a tar archive as docker save writes it)'],
    ]) {
      const r = run(['inspect', image!]);
      assert.equal(r.status, 1, image);
      assert.equal(r.stderr, `layerpipe inspect: ${message}\n`);
    }
  });

  it('retries print one line each on stderr', () => {
    const r = spawnSync(BIN, ['inspect', '--tls-verify=false', 'docker://127.0.0.1:1/app:v1'], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, LAYERPIPE_RETRY_ATTEMPTS: '3', LAYERPIPE_RETRY_DELAY_MS: '1000' },
    });
    assert.equal(r.status, 1);
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0]!, /^layerpipe: retrying in 1s \(2\/3\): connect ECONNREFUSED 127\.0\.0\.1:1 \(pinging container registry 127\.0\.0\.1:1\)$/);
    assert.match(lines[1]!, /^layerpipe: retrying in 2s \(3\/3\): connect ECONNREFUSED/);
    assert.match(lines[2]!, /^layerpipe inspect: .*connect ECONNREFUSED/);
    assert.equal(lines.length, 3);
  });

  it('a registry that speaks plain HTTP, met over TLS: says so and names --tls-verify=false', async () => {
    const server = createServer((_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        // Not spawnSync: this process must keep serving while the command runs.
        const child = spawn(BIN, ['inspect', `docker://127.0.0.1:${port}/app:v1`], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
        child.on('close', (status) => resolve({ status, stderr }));
      });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /the registry answered the TLS handshake in plain HTTP \(OpenSSL: wrong version number\): it speaks HTTP, not HTTPS\. To reach it over plain HTTP, pass --tls-verify=false/);
      assert.doesNotMatch(r.stderr, /retrying/);
    } finally {
      server.close();
    }
  });
});
