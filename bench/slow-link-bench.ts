/**
 * docker:// over a slow link (issue 13): a docker-registry behind the shaping proxy
 * (test/harness/shaping-proxy.ts), which caps each connection at 40 MB/s each way and adds a
 * 20 ms round trip, as a CDN in front of a far registry does. layerpipe (a large blob's first
 * stream measures slow, so the rest comes as concurrent Range requests) against skopeo 1.9.3
 * (one stream per blob), same run, GetBlob, the client hashing every byte:
 *   - one 512 MiB blob; target layerpipe >= 3x skopeo;
 *   - an image of 20 layers of 32 MiB pulled one layer at a time; target >= 2.5x skopeo.
 * Run by hand (without --quick: those full sizes; --quick: a 128 MiB blob and 4 layers; --tls:
 * the registry speaks TLS):
 *
 *   npx tsc -p tsconfig.json && node dist/bench/slow-link-bench.js [--quick] [--tls] [--rounds N] [--mbps 40] [--rtt-ms 20]
 *
 * Extra layerpipe settings come from the environment as usual (LAYERPIPE_PARALLEL_RANGES=1
 * turns the parallel fetch off, for comparison).
 */
import { readFileSync } from 'node:fs';
import type { ImageProxy } from '../clients/typescript';
import { pushRawBlobImage, randomBlobs, type RawBlobImage } from '../test/harness/raw-blob-image';
import { startRegistry, type RunningRegistry } from '../test/harness/registry';
import { spawnProxy, tlsFlags, type ProxyProgram } from '../test/harness/registry-proxy-client';
import { INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import { spawnShapingProxy, type LinkShape, type ShapingProxy } from '../test/harness/shaping-proxy';
import type { BenchRow } from './bench-row';
import { drainVerified, num, peakRssMiB, type Layer } from './throughput';

const MiB = 1024 * 1024;

export interface SlowLinkOptions {
  readonly quick: boolean;
  readonly tls?: boolean;
  readonly rounds?: number;
  readonly link?: LinkShape;
}

interface Case {
  readonly name: string;
  readonly repo: string;
  readonly sizes: readonly number[];
  readonly target: number;
}

function cases(quick: boolean): Case[] {
  return [
    { name: `one ${quick ? 128 : 512} MiB blob, GetBlob`, repo: 'slow/big', sizes: [(quick ? 128 : 512) * MiB], target: 3 },
    { name: `${quick ? 4 : 20} layers of 32 MiB one at a time, GetBlob`, repo: 'slow/layers', sizes: new Array<number>(quick ? 4 : 20).fill(32 * MiB), target: 2.5 },
  ];
}

/** The link of issue 13: 40 MB/s per connection each way, 20 ms added round trip. */
export const WAN_LINK: LinkShape = { bytesPerSecond: 40e6, rttMs: 20 };

/** How a bench row names the link it was measured over. */
export function linkLabel(link: LinkShape): string {
  return `slow link (${num(link.bytesPerSecond / 1e6, 0)} MB/s per connection, +${link.rttMs} ms RTT)`;
}

export interface ShapedRegistry {
  /** Push here (loopback, unshaped). */
  readonly registry: RunningRegistry;
  /** Pull through here: `docker://${shaper.host}/repo:tag`. */
  readonly shaper: ShapingProxy;
  close(): Promise<void>;
}

/** A docker-registry on 127.0.0.1 behind the shaping proxy, the proxy in a child process of its own. */
export async function startShapedRegistry(link: LinkShape, tls: boolean): Promise<ShapedRegistry> {
  const registry = await startRegistry({ tls });
  try {
    const shaper = await spawnShapingProxy({ target: { host: '127.0.0.1', port: registry.port }, ...link });
    return {
      registry,
      shaper,
      close: async () => {
        await shaper.close();
        await registry.stop();
      },
    };
  } catch (err) {
    await registry.stop();
    throw err;
  }
}

/** CPU seconds (user + system) a process has used, or NaN. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Seconds to fetch every layer serially through a fresh proxy, its peak RSS and CPU seconds. */
async function pull(program: ProxyProgram, ref: string, layers: readonly Layer[], args: readonly string[]): Promise<{ seconds: number; rssMiB: number; cpu: number }> {
  const proxy: ImageProxy = await spawnProxy({ program, args });
  try {
    const id = await proxy.openImage(ref);
    const cpuBefore = cpuSeconds(proxy.pid);
    const started = process.hrtime.bigint();
    for (const layer of layers) {
      const blob = await proxy.getBlob(id, layer.digest, layer.size);
      await Promise.all([drainVerified(blob.stream, layer), blob.finish()]);
    }
    return { seconds: Number(process.hrtime.bigint() - started) / 1e9, rssMiB: peakRssMiB(proxy.pid), cpu: cpuSeconds(proxy.pid) - cpuBefore };
  } finally {
    await proxy.close();
  }
}

export async function run(options: { quick: boolean } & Partial<SlowLinkOptions>): Promise<BenchRow[]> {
  const link = options.link ?? WAN_LINK;
  const rounds = options.rounds ?? 1;
  const missing = missingRegistryTools();
  if (missing.length > 0) throw new Error(`slow-link-bench needs ${missing.join(', ')}: ${INSTALL_HINT}`);
  const shaped = await startShapedRegistry(link, options.tls === true);
  const { registry, shaper } = shaped;
  const args = tlsFlags(registry);
  const rows: BenchRow[] = [];
  try {
    for (const c of cases(options.quick)) {
      const image: RawBlobImage = await pushRawBlobImage(registry, c.repo, 'v1', randomBlobs(c.sizes));
      const ref = `docker://${shaper.host}/${c.repo}:v1`;
      const mb = c.sizes.reduce((a, b) => a + b, 0) / 1e6;
      const best: Record<ProxyProgram, number> = { layerpipe: 0, skopeo: 0 };
      for (let round = 1; round <= rounds; round++) {
        for (const program of ['layerpipe', 'skopeo'] as const) {
          await shaper.refreshStats();
          const before = shaper.connectionCount();
          const shaperCpu = cpuSeconds(shaper.pid);
          const { seconds, rssMiB, cpu } = await pull(program, ref, image.layers, args);
          // The shaping proxy is one Node process: on a busy machine its copying, not the link, can be the limit.
          const shaperUsed = cpuSeconds(shaper.pid) - shaperCpu;
          await shaper.refreshStats();
          best[program] = Math.max(best[program], mb / seconds);
          console.log(`${c.name}: ${program.padEnd(9)} ${num(mb / seconds)} MB/s (${num(seconds, 2)} s, ${shaper.connectionCount() - before} connections, ${num(cpu, 2)} CPU s, peak RSS ${num(rssMiB)} MiB; shaping proxy ${num(shaperUsed, 2)} CPU s)`);
        }
      }
      rows.push({
        name: `${linkLabel(link)}: ${c.name}`,
        layerpipe: best.layerpipe,
        skopeo: best.skopeo,
        unit: 'MB/s',
        ratio: best.layerpipe / best.skopeo,
        target: `>= ${c.target}x skopeo`,
      });
    }
  } finally {
    await shaped.close();
  }
  return rows;
}

function parseArgs(argv: readonly string[]): SlowLinkOptions {
  let quick = false;
  let tls = false;
  let rounds = 1;
  let mbps = 40;
  let rttMs = 20;
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--quick') quick = true;
    else if (argv[i] === '--tls') tls = true;
    else if (argv[i] === '--rounds' && Number.isInteger(value) && value > 0) rounds = value, i++;
    else if (argv[i] === '--mbps' && value > 0) mbps = value, i++;
    else if (argv[i] === '--rtt-ms' && value >= 0) rttMs = value, i++;
    else throw new Error(`unknown or bad argument ${argv[i]} (use --quick, --tls, --rounds N, --mbps N, --rtt-ms N)`);
  }
  return { quick, tls, rounds, link: { bytesPerSecond: mbps * 1e6, rttMs } };
}

if (require.main === module) {
  run(parseArgs(process.argv.slice(2))).then((rows) => {
    console.log('');
    for (const r of rows) console.log(`${r.name}: layerpipe ${num(r.layerpipe)} ${r.unit}, skopeo ${num(r.skopeo ?? NaN)} ${r.unit}, ratio ${num(r.ratio ?? NaN, 2)}x (target ${r.target})`);
  }).catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack ?? err.message : String(err));
    process.exitCode = 1;
  });
}
