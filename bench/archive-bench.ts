/**
 * Time to OpenImage + stream every layer of a large oci-archive, layerpipe against skopeo 1.9.3
 * (which unpacks the whole archive into a temporary directory before it can answer). Run by
 * hand after building:
 *
 *   node dist/bench/archive-bench.js [--runs N] [--layers N --layer-mib N] [--gzip] [--cold] [--keep DIR]
 *
 * --gzip also times a gzip-compressed copy of the archive (layerpipe decompresses it once to a
 * spill file; skopeo untars it). --cold drops the page cache before each run (needs root and
 * a writable /proc/sys/vm/drop_caches). Runs alternate between the two proxies; the median is
 * reported, with each proxy's peak RSS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openAndStreamAll, writeLargeOciArchive, type StreamRun } from '../test/harness/archive-large';
import { median } from './stats';

const MiB = 1024 * 1024;

function dropCaches(): void {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      layers: { type: 'string', default: '4' },
      'layer-mib': { type: 'string', default: '256' },
      gzip: { type: 'boolean', default: false },
      cold: { type: 'boolean', default: false },
      keep: { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  const dir = values.keep ?? mkdtempSync(path.join(os.tmpdir(), 'layerpipe-archive-bench-'));
  try {
    const file = path.join(dir, 'big.oci.tar');
    process.stdout.write(`writing ${file}…\n`);
    const archive = writeLargeOciArchive(file, Number(values.layers), Number(values['layer-mib']));
    const archives: { label: string; file: string }[] = [{ label: 'oci-archive (plain tar)', file }];
    if (values.gzip) {
      process.stdout.write('gzip -1…\n');
      execFileSync('gzip', ['-k', '-1', '-f', file]);
      archives.push({ label: 'oci-archive (tar.gz)', file: `${file}.gz` });
    }
    process.stdout.write(`${(archive.bytes / MiB).toFixed(0)} MiB archive, ${archive.layers.length} layers; ${runs} runs each${values.cold ? ', cold page cache' : ', warm page cache'}\n\n`);
    const skopeoTmp = mkdtempSync(path.join(dir, 'skopeo-tmp-'));
    for (const { label, file: f } of archives) {
      const results: Record<'layerpipe' | 'skopeo', StreamRun[]> = { layerpipe: [], skopeo: [] };
      for (let i = 0; i < runs; i++) {
        for (const program of ['layerpipe', 'skopeo'] as const) {
          if (values.cold) dropCaches();
          const r = program === 'layerpipe'
            ? await openAndStreamAll(`oci-archive:${f}:big`, undefined, ['--tmpdir', skopeoTmp])
            : await openAndStreamAll(`oci-archive:${f}:big`, 'skopeo', ['--tmpdir', skopeoTmp]);
          results[program].push(r);
        }
      }
      process.stdout.write(`${label}, ${(statSync(f).size / MiB).toFixed(0)} MiB on disk\n`);
      process.stdout.write('  proxy       OpenImage   open+stream all   MB/s    peak RSS\n');
      for (const program of ['layerpipe', 'skopeo'] as const) {
        const rs = results[program];
        const open = median(rs.map((r) => r.openMs));
        const total = median(rs.map((r) => r.totalMs));
        const peak = median(rs.map((r) => r.peakRss));
        const mbps = archive.layers.reduce((n, l) => n + l.size, 0) / MiB / (total / 1000);
        process.stdout.write(`  ${program.padEnd(10)} ${(open / 1000).toFixed(2).padStart(8)} s ${(total / 1000).toFixed(2).padStart(14)} s ${mbps.toFixed(0).padStart(7)} ${(peak / MiB).toFixed(0).padStart(7)} MiB\n`);
      }
      process.stdout.write('\n');
    }
  } finally {
    if (values.keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
