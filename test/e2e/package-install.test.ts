/**
 * The npm package as a user gets it: `npm pack` in the repository (prepare builds the
 * JavaScript, prepack the addon prebuilds), then the tarball alone installed offline, with an
 * empty npm cache (its dependencies are bundled), into an empty prefix, with no compiler or make
 * on PATH, and used from outside the repository: the
 * `layerpipe` command on the bundled sample image, and the TypeScript client imported, type-checked
 * and run through the package's exports, as a program depending on it would.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, existsSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const run = promisify(execFile);
const CROSS_CC = 'aarch64-linux-gnu-gcc';

/** ELF e_machine values of the two prebuilds. */
const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 } as const;

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(path.join(dir, program)));
}

const skip = onPath(CROSS_CC) || process.env.CI === 'true' ? false : `${CROSS_CC} not installed (apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross)`;

function elfMachine(file: string): number {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  assert.equal(header.readUInt32BE(0), 0x7f454c46, `${file} is an ELF file`);
  return header.readUInt16LE(18);
}

describe('npm package', { skip }, () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-package-'));
  const prefix = path.join(work, 'prefix');
  const installed = path.join(prefix, 'lib', 'node_modules', 'layerpipe');
  const sample = path.join(installed, 'examples', 'sample-image');
  /** PATH for the install and the user: node and sh only, so nothing can be compiled. */
  const tools = path.join(work, 'tools');
  const userEnv = (): NodeJS.ProcessEnv => ({ HOME: work, PATH: `${path.join(prefix, 'bin')}:${tools}`, TMPDIR: os.tmpdir() });
  let tarball = '';
  let files: string[] = [];
  let installLog = '';

  before(async () => {
    const packed = await run('npm', ['pack', '--pack-destination', work], { cwd: ROOT, maxBuffer: 64 << 20, timeout: 240_000 });
    tarball = path.join(work, packed.stdout.trim().split('\n').pop()!);
    files = (await run('tar', ['-tzf', tarball], { maxBuffer: 64 << 20 })).stdout.split('\n').filter((f) => f !== '');
    mkdirSync(tools);
    symlinkSync(process.execPath, path.join(tools, 'node'));
    symlinkSync('/bin/sh', path.join(tools, 'sh'));
    const npmCli = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
    const install = await run(
      process.execPath,
      [npmCli, 'install', '--global', '--offline', '--prefix', prefix, '--foreground-scripts', '--allow-scripts=layerpipe', tarball],
      { cwd: work, env: { ...userEnv(), npm_config_cache: path.join(work, 'npm-cache') }, maxBuffer: 64 << 20, timeout: 240_000 },
    );
    installLog = install.stdout + install.stderr;
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('ships the compiled code, declarations, addon sources and prebuilds, and no tests, benchmarks or CI', () => {
    for (const file of [
      'package/bin/layerpipe', 'package/dist/server/cli/index.js', 'package/dist/server/cli/index.d.ts',
      'package/dist/clients/typescript/index.js', 'package/dist/clients/typescript/index.d.ts', 'package/dist/protocol/methods.json',
      'package/binding.gyp', 'package/protocol/seqpacket/seqpacket.c', 'package/scripts/install-native.js',
      'package/prebuilds/linux-x64/node.napi.glibc.node', 'package/prebuilds/linux-arm64/node.napi.glibc.node',
      'package/examples/sample-image/index.json', 'package/node_modules/undici/package.json',
    ]) assert.ok(files.includes(file), `${file} is in the tarball`);
    const unwanted = files.filter(
      (f) => /^package\/(test|bench|\.ci|clients|server|build)\/|^package\/dist\/(test|bench|examples)\/|^package\/dist\/.*\.map$/.test(f) ||
        (!f.startsWith('package/node_modules/') && f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(unwanted, []);
  });

  it('its prebuilds are Node-API addons for x64 and arm64', () => {
    for (const arch of ['x64', 'arm64'] as const) {
      assert.equal(elfMachine(path.join(installed, 'prebuilds', `linux-${arch}`, 'node.napi.glibc.node')), ELF_MACHINE[arch], arch);
    }
  });

  it('installs with no compiler, using the prebuild for this machine', () => {
    assert.match(installLog, new RegExp(`using the prebuilt addon prebuilds/linux-${process.arch}/node\\.napi\\.glibc\\.node`));
    assert.equal(existsSync(path.join(installed, 'build')), false, 'nothing was compiled');
  });

  it('starts from the bundle, with the prebuild required by its path rather than found by node-gyp-build', async () => {
    // What each start loaded, written at exit by a preload.
    const preload = path.join(work, 'record-loaded.js');
    const loaded = path.join(work, 'loaded.json');
    writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(loaded)}, JSON.stringify(Object.keys(require.cache))));\n`);
    await run('layerpipe', ['inspect', '--insecure-policy', `oci:${sample}:latest`], { cwd: work, env: { ...userEnv(), NODE_OPTIONS: `--require ${preload}` } });
    const files = JSON.parse(readFileSync(loaded, 'utf8')) as string[];
    assert.deepEqual(files.filter((f) => f.endsWith('.node')), [path.join(installed, 'prebuilds', `linux-${process.arch}`, 'node.napi.glibc.node')]);
    assert.deepEqual(files.filter((f) => f.includes('node-gyp-build')), []);
    assert.deepEqual(files.filter((f) => f.startsWith(path.join(installed, 'dist'))), [], 'no module of the compiled tree: the bundle ran');
  });

  it('puts layerpipe on PATH, and inspect reads the bundled sample image from any directory', async () => {
    const index = JSON.parse(readFileSync(path.join(sample, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const { stdout } = await run('layerpipe', ['inspect', '--insecure-policy', `oci:${sample}:latest`], { cwd: work, env: userEnv() });
    assert.ok(stdout.includes(index.manifests[0]!.digest), stdout);
    const version = await run('layerpipe', ['version'], { cwd: work, env: userEnv() });
    assert.match(version.stdout, /0\.\d+\.\d+/);
  });

  it('a program depending on it imports the TypeScript client and the server entry, type-checks and runs', async () => {
    // Beside prefix/lib/node_modules, so `layerpipe` resolves as a dependency does: through its exports.
    const program = path.join(prefix, 'lib', 'consumer.ts');
    writeFileSync(program, [
      "import { ImageProxy, RpcImageProxy, spawnPacketTransport } from 'layerpipe';",
      "import { run } from 'layerpipe/server';",
      'async function main(): Promise<void> {',
      `  const image = ${JSON.stringify(`oci:${sample}:latest`)};`,
      "  const proxy = await ImageProxy.spawn({ args: ['--insecure-policy'] });",
      '  await proxy.initialize();',
      '  const { digest } = await proxy.getManifest(await proxy.openImage(image));',
      '  await proxy.shutdown();',
      "  const rpc = await RpcImageProxy.connect(await spawnPacketTransport({ args: ['--insecure-policy'] }), { payloads: ['fd'] });",
      '  const layers = await rpc.getLayerInfo(await rpc.openImage(image));',
      '  await rpc.shutdown();',
      "  console.log(JSON.stringify({ digest, layers: layers.length, run: typeof run }));",
      '}',
      'void main();',
      '',
    ].join('\n'));
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await run(process.execPath, [
      // Declarations' own bodies were checked when they were emitted; this checks what a dependent sees.
      tsc, '--strict', '--skipLibCheck', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022', '--types', 'node',
      '--typeRoots', path.join(ROOT, 'node_modules', '@types'), program,
    ], { cwd: path.dirname(program) }).catch((err: { stdout?: string }) => assert.fail(`tsc: ${err.stdout ?? String(err)}`));
    const { stdout } = await run('node', [program.replace(/\.ts$/, '.js')], { cwd: work, env: userEnv() });
    const result = JSON.parse(stdout) as { digest: string; layers: number; run: string };
    assert.match(result.digest, /^sha256:[0-9a-f]{64}$/);
    assert.ok(result.layers > 0);
    assert.equal(result.run, 'function');
  });
});
