/**
 * Every fenced example of the READMEs (README.md, clients/NAME/README.md, examples/NAME/README.md),
 * as a reader would use it from the checkout's root after `npm link` put `layerpipe` on PATH:
 * - sh and bash blocks run (bash -e), and must exit 0;
 * - python blocks run (PYTHONPATH=clients/python), and must exit 0;
 * - ts blocks type-check (strict) against the package as a dependent sees it: its exports and
 *   the declarations the build wrote;
 * - rust blocks compile against clients/rust, each inside a function returning
 *   Result<(), Box<dyn Error>> unless it has its own main, through .ci/cargo-offline.sh's
 *   offline cargo;
 * - json, yaml, toml, text and unlabelled blocks are documentation only.
 * A new block is picked up as it is written. One that cannot run here says why in its info
 * string, `skip=REASON` with a REASON from SKIP_REASONS; `id=NAME` names a block whose output
 * OUTPUT_CHECKS checks beyond its exit status. Blocks run in a scratch directory that links
 * to every entry of the checkout, so the files they write stay out of the tree.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { codeBlocks, readmeFiles, type CodeBlock } from '../harness/readme-blocks';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BLOCK_TIMEOUT_MS = 120_000;
/** The first Rust block compiles the client and its dependencies (the Rust suite reuses them). */
const CARGO_TIMEOUT_MS = 600_000;

/** Why a block marked `skip=REASON` is not run here. */
const SKIP_REASONS: Readonly<Record<string, string>> = {
  registry: 'reaches a registry on the network',
  setup: 'sets up or installs the checkout the tests run in (test/e2e/package-install.test.ts tests the package)',
  pypi: "fetches the Python client's build backend (flit_core) from the package index",
  suite: 'runs a test suite that npm test runs itself',
};

const RUN_AS_SHELL = new Set(['sh', 'bash']);
const DOCUMENTATION_ONLY = new Set(['', 'json', 'yaml', 'toml', 'text']);
const KNOWN = new Set([...RUN_AS_SHELL, ...DOCUMENTATION_ONLY, 'python', 'ts', 'typescript', 'rust']);

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** What a block named `id=NAME` must print, beyond exiting 0. */
const OUTPUT_CHECKS: Readonly<Record<string, (stdout: string) => void>> = {
  // README "Protocol 1.0": a JSON-RPC session by hand on serve --stdio gets its four answers.
  'stdio-session': (stdout) => {
    const answers = stdout.trim().split('\n').slice(0, 4).map((line) => JSON.parse(line) as { id: number; result: unknown });
    assert.deepEqual(answers.map((a) => a.id), [1, 2, 3, 4]);
    assert.equal((answers[0]!.result as { protocolVersion: string }).protocolVersion, '1.0.0');
    assert.deepEqual(answers[1]!.result, { image: 1 });
    assert.ok((answers[2]!.result as { layers: unknown[] }).layers.length > 0);
    assert.equal(answers[3]!.result, null);
    assert.match(stdout, /exit status 0/);
  },
  // README "Protocol 1.0": the Python client pulls every layer of the sample image over 1.0.
  'python-1.0': (stdout) => {
    const lines = stdout.trim().split('\n');
    assert.ok(lines.length >= 1);
    for (const line of lines) assert.match(line, /^sha256:[0-9a-f]{64} \d+ bytes, verified$/);
  },
};

const blocks: CodeBlock[] = readmeFiles(ROOT).flatMap((file) => codeBlocks(ROOT, file));
const title = (b: CodeBlock) => `${b.file}:${b.line} ${b.lang || '(no language)'}${b.attrs.has('id') ? ` (${b.attrs.get('id')})` : ''}`;
const isTs = (b: CodeBlock) => b.lang === 'ts' || b.lang === 'typescript';

/** The scratch directory: a link to each entry of the checkout, and a bin/ with `layerpipe` as `npm link` makes it. */
function makeScratch(): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-readme-'));
  const work = path.join(dir, 'checkout');
  mkdirSync(work);
  for (const entry of readdirSync(ROOT)) if (entry !== '.git') symlinkSync(path.join(ROOT, entry), path.join(work, entry));
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  symlinkSync(path.join(ROOT, 'bin', 'layerpipe'), path.join(bin, 'layerpipe'));
  const tmp = path.join(dir, 'tmp');
  mkdirSync(tmp);
  return { dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, TMPDIR: tmp } };
}

function runIn(cwd: string, env: NodeJS.ProcessEnv, command: string, args: string[], input?: string, timeout = BLOCK_TIMEOUT_MS): RunResult {
  const r = spawnSync(command, args, { cwd, env, input, encoding: 'utf8', timeout, maxBuffer: 16 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function assertRan(block: CodeBlock, result: RunResult): void {
  assert.equal(result.status, 0, `${title(block)} exited ${result.status}:\n${result.stderr}\n${result.stdout}`);
  const id = block.attrs.get('id');
  if (id !== undefined) {
    const check = OUTPUT_CHECKS[id];
    assert.ok(check !== undefined, `${title(block)}: no OUTPUT_CHECKS entry for id=${id}`);
    check(result.stdout);
  }
}

/** Type-checks every TypeScript block in one program; each block's diagnostics, by block. */
function typeCheck(dir: string, tsBlocks: CodeBlock[]): Map<CodeBlock, string> {
  const project = path.join(dir, 'ts');
  mkdirSync(path.join(project, 'node_modules'), { recursive: true });
  // As a dependent has it: `layerpipe` resolves through the package's exports to the declarations.
  symlinkSync(ROOT, path.join(project, 'node_modules', 'layerpipe'));
  const files = tsBlocks.map((block, i) => {
    const file = path.join(project, `block-${i}.ts`);
    writeFileSync(file, `${block.code}\nexport {};\n`);
    return file;
  });
  writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler',
      types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')], skipLibCheck: true,
    },
    files,
  }));
  const tsc = runIn(project, process.env, process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--pretty', 'false']);
  const byBlock = new Map<CodeBlock, string>();
  const lines = tsc.stdout.split('\n');
  tsBlocks.forEach((block, i) => byBlock.set(block, lines.filter((l) => l.startsWith(`block-${i}.ts(`)).join('\n')));
  if (tsc.status !== 0 && [...byBlock.values()].every((d) => d === '')) throw new Error(`tsc failed:\n${tsc.stdout}${tsc.stderr}`);
  return byBlock;
}

/** cargo with .ci/cargo-offline.sh's environment (an offline CARGO_HOME over Debian's crates), or why not. */
function cargoEnv(): NodeJS.ProcessEnv | string {
  const packaged = spawnSync('dpkg-query', ['-W', '-f=${Status}', 'librust-serde-json-dev'], { encoding: 'utf8' });
  if (!/install ok installed/.test(packaged.stdout ?? '')) return "Debian's librust-*-dev packages are missing (bash .ci/cargo-offline.sh installs them)";
  const setup = spawnSync('bash', ['-c', 'source .ci/cargo-offline.sh --setup-only >&2 && env -0'], { cwd: ROOT, encoding: 'utf8' });
  if (setup.status !== 0) return `cargo is not set up: ${setup.stderr}`;
  return Object.fromEntries(setup.stdout.split('\0').filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

/** A crate depending on clients/rust with one binary per block; the target directory is the Rust suite's. */
function rustCrate(dir: string, rustBlocks: CodeBlock[]): { crate: string; bins: Map<CodeBlock, string> } {
  const crate = path.join(dir, 'rust');
  mkdirSync(path.join(crate, 'src', 'bin'), { recursive: true });
  writeFileSync(path.join(crate, 'Cargo.toml'), [
    '[package]', 'name = "readme-examples"', 'version = "0.0.0"', 'edition = "2021"', 'publish = false', '',
    '[dependencies]', `layerpipe = { path = ${JSON.stringify(path.join(ROOT, 'clients', 'rust'))} }`, '',
  ].join('\n'));
  const bins = new Map<CodeBlock, string>();
  rustBlocks.forEach((block, i) => {
    const name = `block_${i}`;
    const source = /\bfn main\s*\(/.test(block.code)
      ? block.code
      : `#![allow(unused)]\nfn main() -> Result<(), Box<dyn std::error::Error>> {\n${block.code}\nOk(())\n}\n`;
    writeFileSync(path.join(crate, 'src', 'bin', `${name}.rs`), source);
    bins.set(block, name);
  });
  return { crate, bins };
}

describe('README examples', () => {
  const scratch = makeScratch();
  const checkout = path.join(scratch.dir, 'checkout');
  after(() => rmSync(scratch.dir, { recursive: true, force: true }));

  it('every block has a language this test knows, and every skip a reason', () => {
    for (const block of blocks) {
      assert.ok(KNOWN.has(block.lang), `${title(block)}: unknown language; add it to this test`);
      const skip = block.attrs.get('skip');
      if (skip !== undefined) assert.ok(skip in SKIP_REASONS, `${title(block)}: skip=${skip} is not in SKIP_REASONS`);
    }
  });

  it('has the protocol 1.0 examples that OUTPUT_CHECKS names', () => {
    const ids = blocks.flatMap((b) => (b.attrs.has('id') ? [b.attrs.get('id')!] : []));
    assert.deepEqual([...ids].sort(), Object.keys(OUTPUT_CHECKS).sort());
  });

  const skipReason = (b: CodeBlock): string | false => {
    const skip = b.attrs.get('skip');
    return skip === undefined ? false : `${skip}: ${SKIP_REASONS[skip] ?? 'unknown reason'}`;
  };

  for (const block of blocks.filter((b) => RUN_AS_SHELL.has(b.lang))) {
    it(`${title(block)} runs`, { skip: skipReason(block) }, () => {
      assertRan(block, runIn(checkout, scratch.env, 'bash', ['-e', '-o', 'pipefail', '-c', block.code]));
    });
  }

  for (const block of blocks.filter((b) => b.lang === 'python')) {
    it(`${title(block)} runs`, { skip: skipReason(block) }, () => {
      const env = { ...scratch.env, PYTHONPATH: path.join(ROOT, 'clients', 'python') };
      assertRan(block, runIn(checkout, env, 'python3', ['-'], block.code));
    });
  }

  const tsBlocks = blocks.filter((b) => isTs(b) && !b.attrs.has('skip'));
  describe('TypeScript blocks type-check', () => {
    let diagnostics = new Map<CodeBlock, string>();
    before(() => {
      diagnostics = typeCheck(scratch.dir, tsBlocks);
    });
    for (const block of tsBlocks) it(title(block), () => assert.equal(diagnostics.get(block), '', diagnostics.get(block)));
  });

  const rustBlocks = blocks.filter((b) => b.lang === 'rust' && !b.attrs.has('skip'));
  const cargo = cargoEnv();
  const rustSkip = typeof cargo === 'string' ? (process.env.CI === 'true' ? false : cargo) : false;
  describe('Rust blocks compile', { skip: rustSkip }, () => {
    for (const block of rustBlocks) {
      it(title(block), () => {
        assert.ok(typeof cargo !== 'string', cargo as string);
        const { crate, bins } = rustCrate(scratch.dir, [block]);
        const env = { ...cargo, CARGO_TARGET_DIR: path.join(ROOT, 'clients', 'rust', 'target') };
        const built = runIn(crate, env, 'cargo', ['build', '--offline', '--quiet', '--bin', bins.get(block)!], undefined, CARGO_TIMEOUT_MS);
        assert.equal(built.status, 0, `${title(block)} does not compile:\n${built.stderr}`);
        rmSync(crate, { recursive: true, force: true });
      });
    }
  });
});
