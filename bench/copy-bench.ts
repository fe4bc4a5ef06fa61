/**
 * `layerpipe copy docker://… oci:` against `skopeo copy` of the same image, in the same run, from
 * a docker-registry on 127.0.0.1: over loopback, and through the shaping proxy of slow-link-bench
 * (issue 11: a WAN-like link, by default 40 MB/s per connection and a 20 ms added round trip).
 * Builds an image of incompressible layers (default 4 x 32 MiB), pushes it, then alternates
 * rounds (layerpipe, skopeo, skopeo, layerpipe, …) each into a fresh layout, and prints each
 * tool's median wall time, MB/s (10^6 bytes/s) and the ratio. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/copy-bench.js [--layers 4] [--layer-mib 32] [--rounds 3] [--mbps 40 --rtt-ms 20]
 *
 * Without --mbps/--rtt-ms it measures loopback only; with either, only the shaped link (the
 * other defaults to the WAN link's). `run({ quick })` (npm run bench) measures both.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomLayer } from '../test/harness/oci-builder';
import { pushImage } from '../test/harness/registry-images';
import { INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import type { LinkShape } from '../test/harness/shaping-proxy';
import type { BenchRow } from './bench-row';
import { linkLabel, startShapedRegistry, WAN_LINK } from './slow-link-bench';
import { median } from './stats';

const execFileAsync = promisify(execFile);
const BIN = path.join(__dirname, '..', '..', 'bin', 'layerpipe');
const REPO = 'bench/copy:v1';

export interface CopyBenchOptions {
  readonly layers: number;
  readonly layerMiB: number;
  readonly rounds: number;
  readonly loopback: boolean;
  /** Also (or only, with loopback false) measure through the shaping proxy with this shape. */
  readonly link: LinkShape | undefined;
}

type Tool = 'layerpipe' | 'skopeo';

async function timed(program: string, args: readonly string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await execFileAsync(program, args, { maxBuffer: 16 * 1024 * 1024 });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function copyArgs(tool: Tool, source: string, dest: string): string[] {
  const common = ['--quiet', '--src-tls-verify=false', source, `oci:${dest}:v1`];
  return tool === 'layerpipe' ? ['copy', '--insecure-policy', ...common] : ['--insecure-policy', 'copy', ...common];
}

/** Median ms of each tool copying `source` into a fresh layout, `rounds` times each. */
async function measure(label: string, source: string, work: string, rounds: number): Promise<Record<Tool, number>> {
  const times: Record<Tool, number[]> = { layerpipe: [], skopeo: [] };
  for (let round = 0; round < rounds; round++) {
    // Alternate who goes first, so neither always meets a warmer page cache.
    const order: Tool[] = round % 2 === 0 ? ['layerpipe', 'skopeo'] : ['skopeo', 'layerpipe'];
    for (const tool of order) {
      const dest = path.join(work, `${tool}-${round}`);
      times[tool].push(await timed(tool === 'layerpipe' ? BIN : 'skopeo', copyArgs(tool, source, dest)));
      rmSync(dest, { recursive: true, force: true });
    }
    console.log(`${label}, round ${round + 1}: layerpipe ${times.layerpipe.at(-1)!.toFixed(0)} ms, skopeo ${times.skopeo.at(-1)!.toFixed(0)} ms`);
  }
  return { layerpipe: median(times.layerpipe), skopeo: median(times.skopeo) };
}

export async function runCopyBench(opts: CopyBenchOptions): Promise<BenchRow[]> {
  const missing = missingRegistryTools();
  if (missing.length > 0) throw new Error(`copy-bench needs ${missing.join(', ')}: ${INSTALL_HINT}`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-copy-bench-'));
  // With no shaping asked for, the proxy is still started (no cap, no delay) but not used.
  const shaped = await startShapedRegistry(opts.link ?? { bytesPerSecond: 0, rttMs: 0 }, false);
  const rows: BenchRow[] = [];
  try {
    console.log(`building and pushing ${opts.layers} layers of ${opts.layerMiB} MiB of random bytes…`);
    const layers = Array.from({ length: opts.layers }, (_, i) => randomLayer(opts.layerMiB * 1024 * 1024, `layer-${i}.bin`));
    const bytes = layers.reduce((n, l) => n + l.compressed.length, 0);
    await pushImage(shaped.registry, REPO, { layers });
    const image = `${opts.layers} x ${opts.layerMiB} MiB image`;
    const sources: { label: string; source: string }[] = [];
    if (opts.loopback) sources.push({ label: `loopback: ${image}`, source: shaped.registry.ref(REPO) });
    if (opts.link !== undefined) sources.push({ label: `${linkLabel(opts.link)}: ${image}`, source: `docker://${shaped.shaper.host}/${REPO}` });
    for (const { label, source } of sources) {
      const ms = await measure(label, source, work, opts.rounds);
      const rate = (t: number): number => bytes / 1e6 / (t / 1000);
      rows.push({
        name: `copy docker:// to oci:, ${label}, median of ${opts.rounds}`,
        layerpipe: rate(ms.layerpipe),
        skopeo: rate(ms.skopeo),
        unit: 'MB/s',
        ratio: ms.skopeo / ms.layerpipe,
      });
    }
  } finally {
    await shaped.close();
    rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

/** The bench-suite entry: loopback and the WAN link, a smaller image and fewer rounds when quick. */
export function run(options: { quick: boolean }): Promise<BenchRow[]> {
  return runCopyBench({ layers: 4, layerMiB: options.quick ? 16 : 32, rounds: options.quick ? 2 : 3, loopback: true, link: WAN_LINK });
}

function parseArgs(argv: readonly string[]): CopyBenchOptions {
  let layers = 4;
  let layerMiB = 32;
  let rounds = 3;
  let link: { bytesPerSecond: number; rttMs: number } | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    const count = Number.isInteger(value) && value > 0;
    if (argv[i] === '--layers' && count) layers = value;
    else if (argv[i] === '--layer-mib' && count) layerMiB = value;
    else if (argv[i] === '--rounds' && count) rounds = value;
    else if (argv[i] === '--mbps' && value > 0) link = { ...(link ?? WAN_LINK), bytesPerSecond: value * 1e6 };
    else if (argv[i] === '--rtt-ms' && value >= 0) link = { ...(link ?? WAN_LINK), rttMs: value };
    else throw new Error(`unknown or bad argument ${argv[i]} (use --layers N, --layer-mib N, --rounds N, --mbps N, --rtt-ms N)`);
  }
  return { layers, layerMiB, rounds, loopback: link === undefined, link };
}

if (require.main === module) {
  Promise.resolve().then(() => runCopyBench(parseArgs(process.argv.slice(2)))).then((rows) => {
    console.log('');
    for (const r of rows) {
      console.log(`${r.name}: layerpipe ${r.layerpipe.toFixed(1)} MB/s, skopeo ${r.skopeo!.toFixed(1)} MB/s, time ratio layerpipe/skopeo ${(1 / r.ratio!).toFixed(2)} (below 1: layerpipe faster)`);
    }
  }).catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack ?? err.message : String(err));
    process.exitCode = 1;
  });
}
