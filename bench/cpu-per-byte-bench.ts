/**
 * CPU per byte: the proxy's CPU-seconds (user + sys, from /proc/PID/stat, counted from after
 * OpenImage and a first layer, so start-up and warm-up are left out) per GB streamed, layerpipe against skopeo 1.9.3 in the
 * same run, the client hashing every byte; for a loopback registry and an oci: layout, GetBlob
 * and GetRawBlob. Also the wall-clock ratios the speed targets name (oci: GetRawBlob 4 at once
 * against skopeo's GetBlob 4 at once; registry GetBlob one at a time), and the limits measured
 * beside them: SHA-256 alone in this process, and direct clients with no proxy between
 * (direct-blob-client.ts, each in a new node): undici and node:http hashing the same blobs, undici
 * only reading them, and a socket whose reads land in one reused buffer.
 *
 *   npm run bench                      (every bench, one table)
 *   npx tsc -p tsconfig.json && node dist/bench/cpu-per-byte-bench.js [--quick] [--command PATH]
 *
 * --command runs another layerpipe build (e.g. a main checkout's bin/layerpipe) for before/after.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageProxy } from '../clients/typescript';
import { randomLayer, writeOciImage, type BuiltLayer } from '../test/harness/oci-builder';
import { startRegistry } from '../test/harness/registry';
import { emptyAuthFilePath, pushImage } from '../test/harness/registry-images';
import { spawnProxy, type ProxyProgram } from '../test/harness/registry-proxy-client';
import { missingRegistryTools } from '../test/harness/registry-tools';
import type { BenchRow } from './bench-row';
import { runDirectClient, type Way } from './direct-blob-client';
import { startupBenchEnv } from './startup-bench';
import { fetchLayers, num, type Layer, type Mode } from './throughput';

interface Plan {
  readonly layers: number;
  readonly layerMiB: number;
  /** How many times each measurement fetches every layer (CPU is counted in 10 ms ticks). */
  readonly repeat: number;
}

const FULL: Plan = { layers: 4, layerMiB: 64, repeat: 3 };
const QUICK: Plan = { layers: 2, layerMiB: 32, repeat: 3 };

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** user + sys CPU seconds of a process and all its threads, dead ones included. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime: fields 14 and 15
}

interface Measured {
  readonly cpuPerGB: number;
  readonly mbPerSecond: number;
}

async function startProxy(program: ProxyProgram, command: string | undefined, args: readonly string[]): Promise<ImageProxy> {
  if (program === 'skopeo' || command === undefined) return spawnProxy({ program, args });
  const proxy = await ImageProxy.spawn({ command, args: [...args], env: { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath() } });
  await proxy.initialize();
  return proxy;
}

/** Fetches every layer `repeat` times through a fresh proxy; CPU counted from after OpenImage. */
async function measure(
  program: ProxyProgram, mode: Mode, parallel: number, ref: string, layers: readonly Layer[], repeat: number,
  context: { command: string | undefined; args: readonly string[] },
): Promise<Measured> {
  const proxy = await startProxy(program, context.command, context.args);
  try {
    const id = await proxy.openImage(ref);
    // One layer first, so that what runs once (module loading, compiling the hot code) is left out.
    await fetchLayers(proxy, id, layers.slice(0, 1), mode, 1);
    const pid = proxy.pid!;
    const before = cpuSeconds(pid);
    let bytes = 0;
    let seconds = 0;
    for (let i = 0; i < repeat; i++) {
      const got = await fetchLayers(proxy, id, layers, mode, parallel);
      bytes += got.bytes;
      seconds += got.seconds;
    }
    return { cpuPerGB: (cpuSeconds(pid) - before) / (bytes / 1e9), mbPerSecond: bytes / 1e6 / seconds };
  } finally {
    await proxy.close();
  }
}

/** SHA-256 alone, in this process: CPU-seconds per GB over `mib` MiB in 1 MiB updates. */
function sha256Alone(mib: number): number {
  const chunk = Buffer.alloc(1024 * 1024, 7);
  const hash = createHash('sha256');
  hash.update(chunk); // warm up
  const start = process.cpuUsage();
  for (let i = 0; i < mib; i++) hash.update(chunk);
  hash.digest();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6 / ((mib * 1024 * 1024) / 1e9);
}

/** The direct clients (direct-blob-client.ts) whose CPU per byte bounds the proxy's, each in a new node. */
interface DirectLimits {
  readonly undiciHash: Measured;
  readonly httpHash: Measured;
  readonly undiciRead: Measured;
  readonly socketRead: Measured;
}

function directLimits(urls: readonly string[], repeat: number): DirectLimits {
  const run = (way: Way): Measured => {
    const { cpuPerGB, mbPerSecond } = runDirectClient(['--way', way, '--serial', '--repeat', String(repeat), ...urls], startupBenchEnv());
    if (cpuPerGB === undefined || mbPerSecond === undefined) throw new Error(`direct-blob-client --way ${way} measured nothing`);
    return { cpuPerGB, mbPerSecond };
  };
  return { undiciHash: run('undici-hash'), httpHash: run('http-hash'), undiciRead: run('undici-read'), socketRead: run('socket-read') };
}

const cpuRow = (name: string, lp: Measured, sk: Measured | undefined, target: string, limit: string): BenchRow => ({
  name, layerpipe: lp.cpuPerGB, unit: 'CPU-s/GB', target, limit,
  ...(sk === undefined ? {} : { skopeo: sk.cpuPerGB, ratio: sk.cpuPerGB / lp.cpuPerGB }),
});

const speedRow = (name: string, lp: Measured, sk: Measured, target: string, limit?: string): BenchRow => ({
  name, layerpipe: lp.mbPerSecond, skopeo: sk.mbPerSecond, unit: 'MB/s', ratio: lp.mbPerSecond / sk.mbPerSecond, target,
  ...(limit === undefined ? {} : { limit }),
});

async function runWith(plan: Plan, command: string | undefined, log: (line: string) => void): Promise<BenchRow[]> {
  const missing = missingRegistryTools();
  if (missing.length > 0) throw new Error(`cpu-per-byte-bench needs ${missing.join(', ')}`);
  log(`cpu-per-byte: building ${plan.layers} layers of ${plan.layerMiB} MiB…`);
  const built: BuiltLayer[] = Array.from({ length: plan.layers }, (_, i) => randomLayer(plan.layerMiB * 1024 * 1024, `layer-${i}.bin`));
  const layers: Layer[] = built.map((l) => ({ digest: l.digest, size: l.compressed.length }));
  const mib = Math.round(layers.reduce((n, l) => n + l.size, 0) / 1024 / 1024);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-cpu-bench-'));
  const registry = await startRegistry();
  try {
    writeOciImage(dir, { layers: built }, 'bench');
    const { ref } = await pushImage(registry, 'bench/cpu:v1', { layers: built });
    built.length = 0;
    const sha = sha256Alone(plan.layers * plan.layerMiB);
    const direct = directLimits(layers.map((l) => `${registry.url}/v2/bench/cpu/blobs/${l.digest}`), plan.repeat); // also warms the registry's files
    log(`cpu-per-byte: direct clients (CPU-s/GB): undici hashing ${num(direct.undiciHash.cpuPerGB, 2)}, node:http hashing ${num(direct.httpHash.cpuPerGB, 2)}, undici reading ${num(direct.undiciRead.cpuPerGB, 2)}, a socket into one reused buffer ${num(direct.socketRead.cpuPerGB, 2)}`);
    for (const l of layers) readFileSync(path.join(dir, 'blobs', 'sha256', l.digest.slice(7))); // and the layout's
    const oci = `oci:${dir}:bench`;
    const reg = { command, args: ['--tls-verify=false'] };
    const local = { command, args: [] };
    const step = async (what: string, run: () => Promise<Measured>): Promise<Measured> => {
      const m = await run();
      log(`cpu-per-byte: ${what}: ${num(m.cpuPerGB, 2)} CPU-s/GB, ${num(m.mbPerSecond)} MB/s`);
      return m;
    };
    const regBlob = await step('registry layerpipe GetBlob', () => measure('layerpipe', 'GetBlob', 1, ref, layers, plan.repeat, reg));
    const regSkopeo = await step('registry skopeo GetBlob', () => measure('skopeo', 'GetBlob', 1, ref, layers, plan.repeat, reg));
    const regRaw = await step('registry layerpipe GetRawBlob', () => measure('layerpipe', 'GetRawBlob', 1, ref, layers, plan.repeat, reg));
    const ociBlob = await step('oci: layerpipe GetBlob', () => measure('layerpipe', 'GetBlob', 1, oci, layers, plan.repeat, local));
    const ociSkopeo = await step('oci: skopeo GetBlob', () => measure('skopeo', 'GetBlob', 1, oci, layers, plan.repeat, local));
    const ociRaw = await step('oci: layerpipe GetRawBlob', () => measure('layerpipe', 'GetRawBlob', 1, oci, layers, plan.repeat, local));
    const ociRaw4 = await step('oci: layerpipe GetRawBlob x4', () => measure('layerpipe', 'GetRawBlob', 4, oci, layers, plan.repeat, local));
    const ociSkopeo4 = await step('oci: skopeo GetBlob x4', () => measure('skopeo', 'GetBlob', 4, oci, layers, plan.repeat, local));
    const shaLimit = `SHA-256 alone ${num(sha, 2)}`;
    return [
      cpuRow('proxy CPU: registry GetBlob', regBlob, regSkopeo, '<= 1.0', `${shaLimit}; direct client hashing: undici ${num(direct.undiciHash.cpuPerGB, 2)}, node:http ${num(direct.httpHash.cpuPerGB, 2)}`),
      cpuRow('proxy CPU: registry GetRawBlob (skopeo: GetBlob)', regRaw, regSkopeo, '<= 0.5', `direct client reading: undici ${num(direct.undiciRead.cpuPerGB, 2)}, socket into a reused buffer ${num(direct.socketRead.cpuPerGB, 2)}`),
      cpuRow('proxy CPU: oci: GetBlob', ociBlob, ociSkopeo, '<= 0.85', shaLimit),
      cpuRow('proxy CPU: oci: GetRawBlob (skopeo: GetBlob)', ociRaw, ociSkopeo, '<= 0.1', 'splice: no byte copied'),
      speedRow(`oci: ${mib} MiB, GetRawBlob x4 (skopeo GetBlob x4)`, ociRaw4, ociSkopeo4, '>= 3x'),
      speedRow(`registry GetBlob serial, ${mib} MiB`, regBlob, regSkopeo, '>= 1.8x', `direct client hashing (undici) ${num(direct.undiciHash.mbPerSecond)} MB/s`),
    ];
  } finally {
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bench entry (bench/run-all.ts). CPU rows' ratio is skopeo / layerpipe (times less CPU), MB/s rows' layerpipe / skopeo. */
export async function run(options: { quick: boolean }): Promise<BenchRow[]> {
  return runWith(options.quick ? QUICK : FULL, undefined, (line) => console.error(line));
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--command');
  const command = at >= 0 ? argv[at + 1] : undefined;
  runWith(argv.includes('--quick') ? QUICK : FULL, command, (line) => console.log(line)).then(
    (rows) => console.table(rows),
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack ?? err.message : String(err));
      process.exitCode = 1;
    },
  );
}
