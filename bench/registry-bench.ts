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
import { randomLayer, type BuiltLayer } from '../test/harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../test/harness/registry';
import { httpGet } from '../test/harness/registry-http';
import { pushImage } from '../test/harness/registry-images';
import { INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import { compareProxies, num, type Layer } from './throughput';

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

/** Reads every blob once straight from the registry, so that the page cache is warm for all. */
async function warmUp(registry: RunningRegistry, repo: string, layers: readonly Layer[]): Promise<void> {
  for (const layer of layers) {
    const got = await httpGet(`${registry.url}/v2/${repo}/blobs/${layer.digest}`);
    if (got.status !== 200 || got.body.length !== layer.size) throw new Error(`warm-up read of ${layer.digest} failed: ${got.status}`);
  }
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

    await compareProxies(ref, layers, { rounds: opts.rounds, parallel: opts.parallel, layersLabel: `${opts.layers} layers, ${num(totalMB)} MB in all` }, ['--tls-verify=false']);
  } finally {
    await registry.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
