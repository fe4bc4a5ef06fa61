/**
 * Shared by the throughput benches: fetch every layer through a proxy (layerpipe or skopeo),
 * serially or N at once, the client verifying sha256 like a real consumer, and report MB/s,
 * ratios and the proxy's peak RSS (VmHWM).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { ImageProxy } from '../clients/typescript';
import { spawnProxy, type ProxyProgram } from '../test/harness/registry-proxy-client';

export interface Layer {
  readonly digest: string;
  readonly size: number;
}

/** Reads a stream (a Node Readable or a web ReadableStream) to the end, hashing it; throws when the bytes are not the blob's. */
export async function drainVerified(stream: Readable | AsyncIterable<Uint8Array>, layer: Layer): Promise<number> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== layer.digest || bytes !== layer.size) throw new Error(`client check failed for ${layer.digest}: got ${bytes} bytes hashing to ${digest}`);
  return bytes;
}

export type Mode = 'GetBlob' | 'GetRawBlob';

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
export async function fetchLayers(proxy: ImageProxy, id: number, layers: readonly Layer[], mode: Mode, parallel: number): Promise<{ bytes: number; seconds: number }> {
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
export function peakRssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]) / 1024;
  } catch {
    return NaN;
  }
}

export interface Result {
  readonly program: ProxyProgram;
  readonly mode: Mode;
  readonly parallel: number;
  readonly mbPerSecond: number;
  readonly seconds: number;
  readonly peakRssMiB: number;
}

/** A fresh proxy per measurement, so that its peak RSS belongs to that measurement alone. */
export async function measure(program: ProxyProgram, mode: Mode, parallel: number, ref: string, layers: readonly Layer[], args: readonly string[] = []): Promise<Result> {
  const proxy = await spawnProxy({ program, args });
  try {
    const id = await proxy.openImage(ref);
    const { bytes, seconds } = await fetchLayers(proxy, id, layers, mode, parallel);
    const rss = peakRssMiB(proxy.pid);
    return { program, mode, parallel, mbPerSecond: bytes / 1e6 / seconds, seconds, peakRssMiB: rss };
  } finally {
    await proxy.close();
  }
}

const pad = (s: string, n: number): string => s.padEnd(n);
export const num = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

export function best(results: readonly Result[], program: ProxyProgram, mode: Mode, parallel: number): Result | undefined {
  return results.filter((r) => r.program === program && r.mode === mode && r.parallel === parallel).sort((a, b) => b.mbPerSecond - a.mbPerSecond)[0];
}

/** Runs layerpipe (GetBlob, GetRawBlob) and skopeo (GetBlob) serially and `parallel` at once, `rounds` times, and prints the table. */
export async function compareProxies(ref: string, layers: readonly Layer[], opts: { rounds: number; parallel: number; layersLabel: string }, args: readonly string[] = []): Promise<void> {
  const plan: { program: ProxyProgram; mode: Mode; parallel: number }[] = [];
  for (const parallel of [1, opts.parallel]) {
    plan.push({ program: 'layerpipe', mode: 'GetBlob', parallel }, { program: 'skopeo', mode: 'GetBlob', parallel }, { program: 'layerpipe', mode: 'GetRawBlob', parallel });
  }
  const results: Result[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const step of plan) {
      const result = await measure(step.program, step.mode, step.parallel, ref, layers, args);
      results.push(result);
      console.log(`round ${round}: ${pad(step.program, 9)} ${pad(step.mode, 10)} x${step.parallel}: ${num(result.mbPerSecond)} MB/s (${num(result.seconds, 2)} s), peak RSS ${num(result.peakRssMiB)} MiB`);
    }
  }

  console.log(`\n${opts.layersLabel}; best of ${opts.rounds} round(s); the client verifies sha256 of every byte`);
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
}
