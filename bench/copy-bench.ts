/**
 * `layerpipe copy docker://… oci:` against `skopeo copy` of the same image, in the same run, from
 * a docker-registry on 127.0.0.1. Builds an image of incompressible layers (default 4 x 32 MiB),
 * pushes it, then alternates rounds (layerpipe, skopeo, skopeo, layerpipe, …) each into a fresh
 * layout, and prints each tool's median wall time, MB/s (10^6 bytes/s) and the ratio. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/copy-bench.js [--layers 4] [--layer-mib 32] [--rounds 3]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomLayer } from '../test/harness/oci-builder';
import { startRegistry } from '../test/harness/registry';
import { pushImage } from '../test/harness/registry-images';
import { INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';

const execFileAsync = promisify(execFile);
const BIN = path.join(__dirname, '..', '..', 'bin', 'layerpipe');

interface BenchOptions {
  layers: number;
  layerMiB: number;
  rounds: number;
}

function parseArgs(argv: readonly string[]): BenchOptions {
  const opts: BenchOptions = { layers: 4, layerMiB: 32, rounds: 3 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`bad value for ${argv[i]}`);
    if (argv[i] === '--layers') opts.layers = value;
    else if (argv[i] === '--layer-mib') opts.layerMiB = value;
    else if (argv[i] === '--rounds') opts.rounds = value;
    else throw new Error(`unknown argument ${argv[i]} (use --layers N, --layer-mib N, --rounds N)`);
  }
  return opts;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function timed(program: string, args: readonly string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await execFileAsync(program, args, { maxBuffer: 16 * 1024 * 1024 });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const missing = missingRegistryTools();
  if (missing.length > 0) {
    console.error(`copy-bench needs ${missing.join(', ')}: ${INSTALL_HINT}`);
    process.exitCode = 2;
    return;
  }
  const work = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-copy-bench-'));
  const registry = await startRegistry();
  try {
    console.log(`building and pushing ${opts.layers} layers of ${opts.layerMiB} MiB of random bytes…`);
    const layers = Array.from({ length: opts.layers }, (_, i) => randomLayer(opts.layerMiB * 1024 * 1024, `layer-${i}.bin`));
    const bytes = layers.reduce((n, l) => n + l.compressed.length, 0);
    await pushImage(registry, 'bench/copy:v1', { layers });
    const source = registry.ref('bench/copy:v1');
    const tools = {
      layerpipe: (dest: string) => timed(BIN, ['copy', '--insecure-policy', '--quiet', '--src-tls-verify=false', source, `oci:${dest}:v1`]),
      skopeo: (dest: string) => timed('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', source, `oci:${dest}:v1`]),
    };
    const times: Record<keyof typeof tools, number[]> = { layerpipe: [], skopeo: [] };
    for (let round = 0; round < opts.rounds; round++) {
      // Alternate who goes first, so neither always meets a warmer page cache.
      const order: (keyof typeof tools)[] = round % 2 === 0 ? ['layerpipe', 'skopeo'] : ['skopeo', 'layerpipe'];
      for (const tool of order) {
        const dest = path.join(work, `${tool}-${round}`);
        times[tool].push(await tools[tool](dest));
        rmSync(dest, { recursive: true, force: true });
      }
      console.log(`round ${round + 1}: layerpipe ${times.layerpipe.at(-1)!.toFixed(0)} ms, skopeo ${times.skopeo.at(-1)!.toFixed(0)} ms`);
    }
    const [lp, sk] = [median(times.layerpipe), median(times.skopeo)];
    const rate = (ms: number): string => (bytes / 1e6 / (ms / 1000)).toFixed(1);
    console.log(`image: ${opts.layers} x ${opts.layerMiB} MiB (${bytes} bytes), ${opts.rounds} rounds`);
    console.log(`layerpipe copy: median ${lp.toFixed(0)} ms (${rate(lp)} MB/s)`);
    console.log(`skopeo copy:    median ${sk.toFixed(0)} ms (${rate(sk)} MB/s)`);
    console.log(`time ratio layerpipe/skopeo: ${(lp / sk).toFixed(2)} (below 1: layerpipe faster)`);
  } finally {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
