/**
 * Memory while registry blobs stream through the skopeo wire: what the transfer memory guard
 * (server/transfer/memory-guard.ts) buys. Registry bodies reach the proxy as one fresh
 * ArrayBuffer per socket read, which V8 frees only at a GC; the guard runs a young-generation
 * collection every 2 MiB copied. Four layers are fetched at once, by a fresh proxy with the
 * guard and one without, one connection per blob (LAYERPIPE_PARALLEL_RANGES=1, so the figure
 * does not depend on how ranges are split); the guarded peak must stay under a bound the
 * unguarded one passes, and below the unguarded one.
 *
 * Measured here (shared 2-core machine, 4 × 16 MiB): 65-66 MiB guarded, 88-104 MiB unguarded,
 * of which the node binary's own pages are ~38-40 MiB and the four transfer rings 4 MiB.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { randomLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, sha256Of } from '../../harness/registry-images';
import { fetchBlob, spawnProxy } from '../../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const LAYERS = 4;
const LAYER_BYTES = 16 * 1024 * 1024;
/** Guarded peak allowed: above the guarded figures seen (≤ 66 MiB; 82 before the 512 KiB pipes and the young generation capped), below the unguarded ones (≥ 88). */
const GUARDED_PEAK_MIB = 75;

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
}

describe('registry streaming memory', { skip, timeout: 300_000 }, () => {
  let registry: RunningRegistry;
  let ref = '';
  const layers: { digest: string; size: number }[] = [];

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    const built = Array.from({ length: LAYERS }, (_, i) => randomLayer(LAYER_BYTES, `layer-${i}.bin`));
    for (const layer of built) layers.push({ digest: layer.digest, size: layer.compressed.length });
    ref = (await pushImage(registry, 'memory/stream:v1', { layers: built })).ref;
  });
  after(async () => registry?.stop());

  /** Fetches every layer at once through a fresh proxy, checking each; the proxy's peak RSS in MiB. */
  async function peakWhileStreaming(flags: readonly string[]): Promise<number> {
    const proxy = await spawnProxy({ args: ['--tls-verify=false', '--insecure-policy', ...flags], env: { LAYERPIPE_PARALLEL_RANGES: '1' } });
    try {
      const id = await proxy.openImage(ref);
      const blobs = await Promise.all(layers.map((l) => fetchBlob(proxy, id, l.digest, l.size)));
      blobs.forEach((blob, i) => assert.equal(sha256Of(blob), layers[i]!.digest));
      return peakRssMiB(proxy.pid!);
    } finally {
      await proxy.close();
    }
  }

  it(`${LAYERS} × ${LAYER_BYTES / 1024 / 1024} MiB at once: the guard keeps the peak down`, async () => {
    const guarded = await peakWhileStreaming([]);
    const unguarded = await peakWhileStreaming(['--memory-guard=false']);
    process.stdout.write(`# proxy peak RSS streaming ${LAYERS} × ${LAYER_BYTES / 1024 / 1024} MiB from a registry: ${guarded.toFixed(1)} MiB with the guard, ${unguarded.toFixed(1)} MiB without\n`);
    assert.ok(guarded < GUARDED_PEAK_MIB, `proxy peak RSS ${guarded.toFixed(1)} MiB with the guard (bound ${GUARDED_PEAK_MIB})`);
    assert.ok(guarded < unguarded, `the guard bought nothing: ${guarded.toFixed(1)} MiB with it, ${unguarded.toFixed(1)} MiB without`);
  });
});
