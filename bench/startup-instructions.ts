/**
 * Cold start in instructions, not milliseconds: on a shared machine wall time varies run to run,
 * instruction counts hardly. Each process runs under `valgrind --tool=callgrind` (every thread
 * counted, spawn to exit): `node -e 0`, a proxy answering Initialize then Shutdown, and a proxy
 * opening a small image on a loopback docker-registry and reading its manifest. Medians of a few
 * runs. Every process starts without NODE_EXTRA_CA_CERTS, as in startup-bench: Node parses that
 * file at every start (~350 M instructions for a system bundle), the same in all three, which
 * would flatter the ratios. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/startup-instructions.js [--runs 3] [--proxy-bin PATH]
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageProxy, defaultProxyCommand } from '../clients/typescript';
import { makeLayer } from '../test/harness/oci-builder';
import { startRegistry } from '../test/harness/registry';
import { emptyAuthFilePath, pushImage } from '../test/harness/registry-images';
import { findProgram } from '../test/harness/registry-tools';
import { startupBenchEnv } from './startup-bench';
import { median } from './stats';

const PROXY_ARGS = ['--insecure-policy', '--tls-verify=false'];

/** The instructions callgrind counted in one run, read from the files it wrote into `dir`. */
function collected(dir: string): number {
  let total = 0;
  for (const file of readdirSync(dir)) {
    const summary = /^summary: (\d+)$/m.exec(readFileSync(path.join(dir, file), 'utf8'));
    if (summary?.[1] !== undefined) total += Number(summary[1]);
  }
  return total;
}

function callgrindArgs(dir: string): string[] {
  return ['--tool=callgrind', `--callgrind-out-file=${path.join(dir, 'cg.%p')}`];
}

async function bareNode(dir: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('valgrind', [...callgrindArgs(dir), 'node', '-e', '0'], { stdio: 'ignore', env: startupBenchEnv() });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`valgrind node -e 0 exited ${code}`))));
  });
  return collected(dir);
}

/** A wrapper the client spawns as the proxy command: the proxy under callgrind. */
function wrapper(dir: string, proxyBin: string): string {
  const file = path.join(dir, 'proxy-under-callgrind');
  writeFileSync(file, `#!/bin/sh\nexec valgrind ${callgrindArgs(path.join(dir, 'out')).join(' ')} node ${JSON.stringify(proxyBin)} "$@" 2>/dev/null\n`);
  chmodSync(file, 0o755);
  return file;
}

async function proxyRun(dir: string, proxyBin: string, ref: string | undefined): Promise<number> {
  const outDir = path.join(dir, 'out');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir);
  const proxy = await ImageProxy.spawn({ command: wrapper(dir, proxyBin), args: PROXY_ARGS, env: { ...startupBenchEnv(), REGISTRY_AUTH_FILE: emptyAuthFilePath() }, exitTimeoutMs: 600_000 });
  await proxy.initialize();
  if (ref !== undefined) {
    const image = await proxy.openImage(ref);
    if ((await proxy.getManifest(image)).bytes.length === 0) throw new Error('empty manifest');
  }
  const status = await proxy.shutdown();
  if (status !== 0) throw new Error(`the proxy exited ${status}: ${proxy.stderr}`);
  return collected(outDir);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let runs = 3;
  let proxyBin = defaultProxyCommand();
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--runs' && Number(argv[i + 1]) > 0) runs = Number(argv[i + 1]);
    else if (argv[i] === '--proxy-bin' && argv[i + 1] !== undefined) proxyBin = path.resolve(argv[i + 1] as string);
    else throw new Error(`unknown or bad argument ${argv[i]} (use --runs N, --proxy-bin PATH)`);
  }
  if (findProgram('valgrind') === undefined) throw new Error('startup-instructions needs valgrind (apt-get install valgrind)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-startup-ir-'));
  const registry = await startRegistry();
  try {
    const { ref } = await pushImage(registry, 'bench/startup:v1', { layers: [makeLayer({ 'etc/os-release': 'ID=bench\n' })] });
    const counts = { node: [] as number[], initialize: [] as number[], manifest: [] as number[] };
    for (let run = 0; run < runs; run++) {
      const nodeDir = path.join(dir, `node-${run}`);
      mkdirSync(nodeDir);
      counts.node.push(await bareNode(nodeDir));
      counts.initialize.push(await proxyRun(dir, proxyBin, undefined));
      counts.manifest.push(await proxyRun(dir, proxyBin, ref));
    }
    const node = median(counts.node);
    console.log(`instructions, medians of ${runs} (NODE_EXTRA_CA_CERTS unset); proxy ${proxyBin}`);
    for (const [name, xs] of Object.entries(counts)) {
      console.log(`${name.padEnd(12)}${(median(xs) / 1e6).toFixed(1).padStart(8)} M  ${(median(xs) / node).toFixed(2)}× node -e 0`);
    }
  } finally {
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
