/**
 * oci: throughput: layerpipe against skopeo 1.9.3 on the same local OCI layout, in the same run.
 * Builds an image of incompressible layers (default 4 x 64 MiB = 256 MiB), then fetches every
 * layer through each proxy, serially and 4 at once, the client hashing every byte. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/oci-bench.js [--layers 4] [--layer-mib 64] [--rounds 2]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomLayer, writeOciImage } from '../test/harness/oci-builder';
import { compareProxies, num, type Layer } from './throughput';

function parseArgs(argv: readonly string[]): { layers: number; layerMiB: number; rounds: number; parallel: number } {
  const opts = { layers: 4, layerMiB: 64, rounds: 2, parallel: 4 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`bad value for ${argv[i]}`);
    if (argv[i] === '--layers') opts.layers = value;
    else if (argv[i] === '--layer-mib') opts.layerMiB = value;
    else if (argv[i] === '--rounds') opts.rounds = value;
    else if (argv[i] === '--parallel') opts.parallel = value;
    else throw new Error(`unknown argument ${argv[i]} (use --layers N, --layer-mib N, --rounds N, --parallel N)`);
  }
  return opts;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-oci-bench-'));
  try {
    const built = Array.from({ length: opts.layers }, (_, i) => randomLayer(opts.layerMiB * 1024 * 1024, `layer-${i}.bin`));
    writeOciImage(dir, { layers: built }, 'bench');
    const layers: Layer[] = built.map((l) => ({ digest: l.digest, size: l.compressed.length }));
    built.length = 0;
    for (const l of layers) readFileSync(path.join(dir, 'blobs', 'sha256', l.digest.slice(7))); // warm the page cache
    const totalMB = layers.reduce((n, l) => n + l.size, 0) / 1e6;
    await compareProxies(`oci:${dir}:bench`, layers, { rounds: opts.rounds, parallel: opts.parallel, layersLabel: `oci: layout, ${opts.layers} layers, ${num(totalMB)} MB in all` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
