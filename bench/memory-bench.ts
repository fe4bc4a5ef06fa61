/**
 * Memory: the proxy process's peak resident set (VmHWM from /proc/PID/status), layerpipe against
 * skopeo 1.9.3 in the same run, on the same loopback registry:
 *
 * - idle: spawned, Initialize answered, read a moment later;
 * - streaming: an image of 4 incompressible layers (default 64 MiB each) opened and all four
 *   fetched at once with GetBlob, the client hashing every byte, read once the last is verified;
 *   one connection per blob (LAYERPIPE_PARALLEL_RANGES=1), as test/e2e/registry/stream-memory pins.
 *
 * A fresh proxy per measurement, so the peak is that measurement's; the figure is the median
 * over rounds. Streaming is measured with the transfer memory guard (the default) and without it
 * (--memory-guard=false), so what the guard buys is a same-run figure. Targets (issue 13): at
 * most 48 MiB idle, at most 64 MiB streaming. Then the same four at once through the slow link of
 * slow-link-bench (40 MB/s per connection, +20 ms), parallel ranges on as by default: the pool's
 * limit on bytes held ahead of readers (64 MiB, held-bytes.ts) against none (4 GiB).
 * `--breakdown` loads memory-sampler.ts into each layerpipe proxy and prints what its RSS was
 * made of at its peak (last round). Limits measured in the same rounds: `node -e 0`'s peak, and a plain Node client fetching the same four blobs at
 * once over node:http and hashing them (bench/direct-blob-client.ts). Every Node process starts
 * without NODE_EXTRA_CA_CERTS (startup-bench.ts says why). Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/memory-bench.js [--rounds 3] [--layer-mib 64] [--quick] [--breakdown]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { randomLayer, type BuiltLayer } from '../test/harness/oci-builder';
import { startRegistry } from '../test/harness/registry';
import { httpGet } from '../test/harness/registry-http';
import { pushImage } from '../test/harness/registry-images';
import type { ImageProxy } from '../clients/typescript';
import { spawnProxy, type ProxyProgram } from '../test/harness/registry-proxy-client';
import { findProgram, INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import { spawnShapingProxy, type ShapingProxy } from '../test/harness/shaping-proxy';
import type { BenchRow } from './bench-row';
import { runDirectClient } from './direct-blob-client';
import { printRows } from './print-rows';
import { linkLabel, WAN_LINK } from './slow-link-bench';
import { NO_EXTRA_CA_CERTS, startupBenchEnv } from './startup-bench';
import { SAMPLE_FILE_ENV, type MemoryBreakdown } from './memory-sampler';
import { fetchLayers, num, peakRssMiB, type Layer } from './throughput';
import { median } from './stats';

const IDLE_TARGET_MIB = 48;
const STREAMING_TARGET_MIB = 64;
const LAYERS = 4;
/** How long an idle proxy is left before its peak is read: timers and lazy work after Initialize count too. */
const IDLE_SETTLE_MS = 300;

export interface MemoryBenchOptions {
  readonly quick: boolean;
  readonly rounds?: number;
  readonly layerMiB?: number;
  /** Print what each layerpipe proxy's RSS was made of at its peak. */
  readonly breakdown?: boolean;
}

const ARGS = ['--tls-verify=false', '--insecure-policy'];

/** One proxy's run: spawned (with the sampler preloaded when a breakdown is wanted), `work` done, its peak read. */
async function peakOf(program: ProxyProgram, flags: readonly string[], breakdown: boolean, work: (proxy: ImageProxy) => Promise<void>, extraEnv: Record<string, string> = {}): Promise<{ peak: number; parts?: MemoryBreakdown }> {
  const sampleFile = path.join(os.tmpdir(), `layerpipe-memory-sample-${process.pid}.json`);
  const sampled = breakdown && program === 'layerpipe';
  // One connection per blob: a blob split into ranges holds pieces ahead of the reader by design
  // (up to 6 × 8 MiB each, blob-parallel.ts), and whether it splits depends on the machine's load.
  const ranges = { LAYERPIPE_PARALLEL_RANGES: '1', ...NO_EXTRA_CA_CERTS, ...extraEnv };
  const env: Record<string, string> = sampled ? { ...ranges, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${require.resolve('./memory-sampler')}`.trim(), [SAMPLE_FILE_ENV]: sampleFile } : ranges;
  const proxy = await spawnProxy({ program, args: [...ARGS, ...flags], env });
  let peak = NaN;
  try {
    await work(proxy);
    peak = peakRssMiB(proxy.pid);
  } finally {
    await proxy.close();
  }
  if (!sampled || !existsSync(sampleFile)) return { peak };
  const parts = JSON.parse(readFileSync(sampleFile, 'utf8')) as MemoryBreakdown;
  rmSync(sampleFile, { force: true });
  return { peak, parts };
}

const idle = (): Promise<void> => delay(IDLE_SETTLE_MS);

/** The peak RSS (MiB) a Node program printed on its stdout. */
function printedPeak(args: readonly string[]): number {
  const out = execFileSync(process.execPath, args, { encoding: 'utf8', env: startupBenchEnv() });
  const mib = Number(out.trim().split('\n').pop());
  if (!(mib > 0)) throw new Error(`node ${args.join(' ')} printed no peak: ${out}`);
  return mib;
}

const PRINT_PEAK = "process.stdout.write(String(Number(/^VmHWM:\\s+(\\d+)/m.exec(require('fs').readFileSync('/proc/self/status','utf8'))[1])/1024))";

/** Opens the image and fetches all its layers at once with GetBlob, the client verifying every byte. */
const streamAll = (ref: string, layers: readonly Layer[]) => async (proxy: ImageProxy): Promise<void> => {
  const id = await proxy.openImage(ref);
  await fetchLayers(proxy, id, layers, 'GetBlob', LAYERS);
};

function describeParts(what: string, parts: MemoryBreakdown | undefined): string {
  if (parts === undefined) return `${what}: no sample`;
  const { v8Spaces, ...totals } = parts;
  const spaces = Object.entries(v8Spaces ?? {}).filter(([, v]) => v >= 0.05).map(([k, v]) => `${k} ${num(v)}`);
  const fields = [...Object.entries(totals).map(([k, v]: [string, number]) => `${k} ${num(v)}`), `V8 by space: ${spaces.join(' ')}`];
  return `${what} (MiB at its peak): ${fields.join(', ')}`;
}

function row(name: string, samples: Record<ProxyProgram, number[]>, target: number): BenchRow {
  const layerpipe = median(samples.layerpipe);
  const skopeo = samples.skopeo.length > 0 ? { skopeo: median(samples.skopeo) } : {};
  return { name, layerpipe, ...skopeo, unit: 'MiB', ratio: layerpipe / target, target: `≤ ${target} MiB`, limit: layerpipe <= target ? 'ok' : 'over' };
}

export async function run(options: MemoryBenchOptions): Promise<BenchRow[]> {
  const missing = missingRegistryTools();
  if (missing.length > 0) throw new Error(`memory-bench needs ${missing.join(', ')}: ${INSTALL_HINT}`);
  const rounds = options.rounds ?? (options.quick ? 1 : 3);
  const layerMiB = options.layerMiB ?? (options.quick ? 16 : 64);
  const programs: ProxyProgram[] = findProgram('skopeo') !== undefined ? ['layerpipe', 'skopeo'] : ['layerpipe'];

  const built: BuiltLayer[] = [];
  for (let i = 0; i < LAYERS; i++) built.push(randomLayer(layerMiB * 1024 * 1024, `layer-${i}.bin`));
  const layers: Layer[] = built.map((l) => ({ digest: l.digest, size: l.compressed.length }));
  const registry = await startRegistry();
  let shaper: ShapingProxy | undefined;
  try {
    const { ref } = await pushImage(registry, 'bench/memory:v1', { layers: built });
    built.length = 0; // the registry has them now
    for (const layer of layers) {
      // Warm the page cache, so that every program reads alike.
      const got = await httpGet(`${registry.url}/v2/bench/memory/blobs/${layer.digest}`);
      if (got.status !== 200) throw new Error(`warm-up read of ${layer.digest}: ${got.status}`);
    }
    const idlePeaks: Record<ProxyProgram, number[]> = { layerpipe: [], skopeo: [] };
    const streaming: Record<ProxyProgram, number[]> = { layerpipe: [], skopeo: [] };
    const unguarded: Record<ProxyProgram, number[]> = { layerpipe: [], skopeo: [] };
    const slow: Record<ProxyProgram, number[]> = { layerpipe: [], skopeo: [] };
    const slowUnlimited: Record<ProxyProgram, number[]> = { layerpipe: [], skopeo: [] };
    shaper = await spawnShapingProxy({ target: { host: '127.0.0.1', port: registry.port }, ...WAN_LINK });
    const slowRef = ref.replace(`//${new URL(registry.url).host}/`, `//${shaper.host}/`);
    const rangesOn = { LAYERPIPE_PARALLEL_RANGES: '4' };
    const bareNode: number[] = [];
    const directClient: number[] = [];
    const blobUrls = layers.map((l) => `${registry.url}/v2/bench/memory/blobs/${l.digest}`);
    const breakdown = options.breakdown ?? false;
    const parts: string[] = [];
    for (let round = 0; round < rounds; round++) {
      parts.length = 0;
      bareNode.push(printedPeak(['-e', PRINT_PEAK]));
      directClient.push(runDirectClient(blobUrls, startupBenchEnv()).peakMiB);
      for (const program of programs) {
        const atRest = await peakOf(program, [], breakdown, idle);
        idlePeaks[program].push(atRest.peak);
        const busy = await peakOf(program, [], breakdown, streamAll(ref, layers));
        streaming[program].push(busy.peak);
        slow[program].push((await peakOf(program, [], false, streamAll(slowRef, layers), rangesOn)).peak);
        if (program !== 'layerpipe') continue;
        slowUnlimited[program].push((await peakOf(program, [], false, streamAll(slowRef, layers), { ...rangesOn, LAYERPIPE_RANGES_HELD_MB: '4096' })).peak);
        const bare = await peakOf(program, ['--memory-guard=false'], breakdown, streamAll(ref, layers));
        unguarded[program].push(bare.peak);
        if (breakdown) parts.push(describeParts('idle', atRest.parts), describeParts('streaming', busy.parts), describeParts('streaming, no guard', bare.parts));
      }
    }
    for (const line of parts) console.log(`# ${line}`);
    return [
      row('memory: peak RSS idle after Initialize', idlePeaks, IDLE_TARGET_MIB),
      row(`memory: peak RSS streaming ${LAYERS}×${layerMiB} MiB at once`, streaming, STREAMING_TARGET_MIB),
      row(`memory: same, --memory-guard=false`, unguarded, STREAMING_TARGET_MIB),
      row(`memory: same over a ${linkLabel(WAN_LINK)}, ranges on`, slow, STREAMING_TARGET_MIB),
      row(`memory: same, no limit on what the pool holds ahead`, slowUnlimited, STREAMING_TARGET_MIB),
      { name: 'memory: limit: node -e 0 peak RSS', layerpipe: median(bareNode), unit: 'MiB', limit: 'any Node process' },
      { name: `memory: limit: plain Node client, node:http, the same ${LAYERS} blobs at once, hashing (no proxy)`, layerpipe: median(directClient), unit: 'MiB', limit: 'Node streaming the ordinary way' },
    ];
  } finally {
    await shaper?.close();
    await registry.stop();
  }
}

function parseArgs(argv: readonly string[]): MemoryBenchOptions {
  let quick = false;
  let rounds: number | undefined;
  let layerMiB: number | undefined;
  let breakdown = false;
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    const positive = Number.isInteger(value) && value > 0;
    if (argv[i] === '--quick') quick = true;
    else if (argv[i] === '--breakdown') breakdown = true;
    else if (argv[i] === '--rounds' && positive) rounds = value;
    else if (argv[i] === '--layer-mib' && positive) layerMiB = value;
    else throw new Error(`unknown or bad argument ${argv[i]} (use --rounds N, --layer-mib N,  --quick, --breakdown)`);
    if (argv[i] !== '--quick' && argv[i] !== '--breakdown') i++;
  }
  return { quick, breakdown, ...(rounds !== undefined ? { rounds } : {}), ...(layerMiB !== undefined ? { layerMiB } : {}) };
}

if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2));
  run(opts).then(
    (rows) => printRows('peak RSS (VmHWM) of the proxy process, median over rounds (same run)', rows),
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack ?? err.message : String(err));
      process.exitCode = 1;
    },
  );
}
