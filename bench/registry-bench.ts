/**
 * docker:// throughput: layerpipe against skopeo 1.9.3 on the same loopback registry, in the
 * same run. Builds an image of incompressible layers (default 4 x 64 MiB), pushes it to a
 * docker-registry on 127.0.0.1, then fetches every layer through each proxy, serially and 4 at
 * once, the client hashing every byte. Prints MB/s (10^6 bytes/s), layerpipe/skopeo ratios and
 * the proxy process's peak RSS (VmHWM). Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/registry-bench.js [--layers 4] [--layer-mib 64] [--rounds 1]
 *
 * "4 at once" for skopeo 1.9.3: its FinishPipe holds the whole server until that copy ends, but
 * the copies start at GetBlob, so the client sends 4 GetBlobs, reads the 4 pipes concurrently
 * and queues the FinishPipes; replies come in order while all four pipes flow.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { ImageProxy } from '../clients/typescript';
import { randomLayer, type BuiltLayer } from '../test/support/oci-builder';
import { startRegistry, type RunningRegistry } from '../test/support/registry';
import { httpGet } from '../test/support/registry-http';
import { pushImage } from '../test/support/registry-images';
import { spawnProxy, type ProxyProgram } from '../test/support/registry-proxy-client';
import { INSTALL_HINT, missingRegistryTools } from '../test/support/registry-tools';

interface BenchOptions {
  layers: number;
  layerMiB: number;
  rounds: number;
  parallel: number;
}

function parseArgs(argv: readonly string[]): BenchOptions {
  const opts: BenchOptions = { layers: 4, layerMiB: 64, rounds: 1, parallel: 4 };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    const positive = Number.isInteger(value) && value > 0;
    if (argv[i] === '--layers' && positive) opts.layers = value;
    else if (argv[i] === '--layer-mib' && positive) opts.layerMiB = value;
    else if (argv[i] === '--rounds' && positive) opts.rounds = value;
    else if (argv[i] === '--parallel' && positive) opts.parallel = value;
    else throw new Error(`unknown or bad argument ${argv[i]} (use --layers N, --layer-mib N, --rounds N, --parallel N)`);
    i++;
  }
  return opts;
}

interface Layer {
  readonly digest: string;
  readonly size: number;
}

/** Reads a stream to the end, hashing it; throws when the bytes are not the blob's. */
async function drainVerified(stream: Readable, layer: Layer): Promise<number> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    hash.update(buf);
    bytes += buf.length;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== layer.digest || bytes !== layer.size) throw new Error(`client check failed for ${layer.digest}: got ${bytes} bytes hashing to ${digest}`);
  return bytes;
}

type Mode = 'GetBlob' | 'GetRawBlob';

/** One layer through GetBlob: pipe read while FinishPipe waits. */
async function viaGetBlob(proxy: ImageProxy, id: number, layer: Layer): Promise<number> {
  const transfer = await proxy.getBlob(id, layer.digest, layer.size);
  const [bytes] = await Promise.all([drainVerified(transfer.stream, layer), transfer.finish()]);
  return bytes;
}

async function viaGetRawBlob(proxy: ImageProxy, id: number, layer: Layer): Promise<number> {
  const transfer = await proxy.getRawBlob(id, layer.digest);
  const [bytes, error] = await Promise.all([drainVerified(transfer.stream, layer), transfer.error]);
  if (error !== null) throw new Error(`GetRawBlob ${layer.digest}: ${error.code}: ${error.message}`);
  return bytes;
}

/** Fetches the layers, `parallel` at a time (1 = serial); returns bytes and seconds. */
async function fetchLayers(proxy: ImageProxy, id: number, layers: readonly Layer[], mode: Mode, parallel: number): Promise<{ bytes: number; seconds: number }> {
  const one = mode === 'GetBlob' ? viaGetBlob : viaGetRawBlob;
  const started = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < layers.length; i += parallel) {
    const batch = layers.slice(i, i + parallel);
    for (const n of await Promise.all(batch.map((layer) => one(proxy, id, layer)))) bytes += n;
  }
  return { bytes, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

/** Peak resident set of a process, in MiB (VmHWM), or NaN when it cannot be read. */
function peakRssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]) / 1024;
  } catch {
    return NaN;
  }
}

interface Result {
  readonly program: ProxyProgram;
  readonly mode: Mode;
  readonly parallel: number;
  readonly mbPerSecond: number;
  readonly seconds: number;
  readonly peakRssMiB: number;
}

/** A fresh proxy per measurement, so that its peak RSS belongs to that measurement alone. */
async function measure(program: ProxyProgram, mode: Mode, parallel: number, ref: string, layers: readonly Layer[]): Promise<Result> {
  const proxy = await spawnProxy({ program, args: ['--tls-verify=false'] });
  try {
    const id = await proxy.openImage(ref);
    const { bytes, seconds } = await fetchLayers(proxy, id, layers, mode, parallel);
    const rss = peakRssMiB(proxy.pid);
    return { program, mode, parallel, mbPerSecond: bytes / 1e6 / seconds, seconds, peakRssMiB: rss };
  } finally {
    await proxy.close();
  }
}

/** Reads every blob once straight from the registry, so that the page cache is warm for all. */
async function warmUp(registry: RunningRegistry, repo: string, layers: readonly Layer[]): Promise<void> {
  for (const layer of layers) {
    const got = await httpGet(`${registry.url}/v2/${repo}/blobs/${layer.digest}`);
    if (got.status !== 200 || got.body.length !== layer.size) throw new Error(`warm-up read of ${layer.digest} failed: ${got.status}`);
  }
}

const pad = (s: string, n: number): string => s.padEnd(n);
const num = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

function best(results: readonly Result[], program: ProxyProgram, mode: Mode, parallel: number): Result | undefined {
  return results.filter((r) => r.program === program && r.mode === mode && r.parallel === parallel).sort((a, b) => b.mbPerSecond - a.mbPerSecond)[0];
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const missing = missingRegistryTools();
  if (missing.length > 0) {
    console.error(`registry-bench needs ${missing.join(', ')}: ${INSTALL_HINT}`);
    process.exitCode = 2;
    return;
  }
  console.log(`building ${opts.layers} layers of ${opts.layerMiB} MiB of random bytes…`);
  const built: BuiltLayer[] = [];
  for (let i = 0; i < opts.layers; i++) built.push(randomLayer(opts.layerMiB * 1024 * 1024, `layer-${i}.bin`));
  const layers: Layer[] = built.map((l) => ({ digest: l.digest, size: l.compressed.length }));
  const totalMB = layers.reduce((n, l) => n + l.size, 0) / 1e6;

  const registry = await startRegistry();
  try {
    const pushStarted = Date.now();
    const { ref } = await pushImage(registry, 'bench/layers:v1', { layers: built });
    console.log(`pushed ${num(totalMB)} MB to ${registry.host} in ${num((Date.now() - pushStarted) / 1000)} s`);
    built.length = 0; // the layers live in the registry now; let their buffers go
    await warmUp(registry, 'bench/layers', layers);

    const plan: { program: ProxyProgram; mode: Mode; parallel: number }[] = [];
    for (const parallel of [1, opts.parallel]) {
      plan.push({ program: 'layerpipe', mode: 'GetBlob', parallel }, { program: 'skopeo', mode: 'GetBlob', parallel }, { program: 'layerpipe', mode: 'GetRawBlob', parallel });
    }
    const results: Result[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      for (const step of plan) {
        const result = await measure(step.program, step.mode, step.parallel, ref, layers);
        results.push(result);
        console.log(`round ${round}: ${pad(step.program, 9)} ${pad(step.mode, 10)} x${step.parallel}: ${num(result.mbPerSecond)} MB/s (${num(result.seconds, 2)} s), peak RSS ${num(result.peakRssMiB)} MiB`);
      }
    }

    console.log(`\n${opts.layers} layers, ${num(totalMB)} MB in all; best of ${opts.rounds} round(s); the client verifies sha256 of every byte`);
    console.log(`${pad('program', 10)}${pad('method', 12)}${pad('at once', 9)}${pad('MB/s', 10)}${pad('seconds', 10)}peak RSS (MiB)`);
    for (const step of plan) {
      const r = best(results, step.program, step.mode, step.parallel);
      if (r !== undefined) console.log(`${pad(r.program, 10)}${pad(r.mode, 12)}${pad(String(r.parallel), 9)}${pad(num(r.mbPerSecond), 10)}${pad(num(r.seconds, 2), 10)}${num(r.peakRssMiB)}`);
    }
    for (const parallel of [1, opts.parallel]) {
      const lp = best(results, 'layerpipe', 'GetBlob', parallel);
      const raw = best(results, 'layerpipe', 'GetRawBlob', parallel);
      const sk = best(results, 'skopeo', 'GetBlob', parallel);
      if (lp !== undefined && sk !== undefined && raw !== undefined) {
        console.log(`ratio layerpipe/skopeo, ${parallel} at once: GetBlob ${num(lp.mbPerSecond / sk.mbPerSecond, 2)}x, GetRawBlob ${num(raw.mbPerSecond / sk.mbPerSecond, 2)}x`);
      }
    }
  } finally {
    await registry.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
