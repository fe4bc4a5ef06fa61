/**
 * `npm run bench [-- --quick]`: runs every bench entry in turn and prints one table of both
 * programs, their ratio, the target and the limits measured in the same run (each entry's
 * own, and bare node start-up measured here).
 *
 * An entry is a module in bench/ exporting `run(options: { quick: boolean }): Promise<BenchRow[]>`.
 * One whose module is absent from this build is skipped (named as such); one that fails is
 * reported and makes the exit status 1, the others still run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { BenchRow } from './bench-row';
import { startupBenchEnv } from './startup-bench';

/** Every bench entry, in the order they run. */
const ENTRIES = ['startup-bench', 'memory-bench', 'slow-link-bench', 'copy-bench', 'cpu-per-byte-bench'] as const;

interface BenchEntry {
  run(options: { quick: boolean }): Promise<BenchRow[]>;
}

function isEntry(mod: unknown): mod is BenchEntry {
  return typeof mod === 'object' && mod !== null && typeof (mod as { run?: unknown }).run === 'function';
}

/** Numbers to 3 significant digits (2 decimals below 10), n/a for what was not measured. */
function show(x: number | undefined): string {
  if (x === undefined) return '';
  if (!Number.isFinite(x)) return 'n/a';
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function printTable(rows: readonly { entry: string; row: BenchRow }[]): void {
  const header = ['bench', 'measure', 'layerpipe', 'skopeo', 'unit', 'ratio', 'target', 'limit (same run)'];
  const cells = rows.map(({ entry, row }) => [
    entry, row.name, show(row.layerpipe), show(row.skopeo), row.unit, row.ratio === undefined ? '' : `${show(row.ratio)}x`, row.target ?? '', row.limit ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((s, i) => (i === 2 || i === 3 || i === 5 ? s.padStart(widths[i]!) : s.padEnd(widths[i]!))).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
  console.log('ratio: as each entry defines it against skopeo 1.9.3 in the same run (cpu-per-byte: times less CPU, times more MB/s)');
}

/** Bare node start-up (`node -e 0`, without NODE_EXTRA_CA_CERTS as in startup-bench), best of `runs`, in ms. */
function bareNodeStartupMs(runs: number): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0'], { stdio: 'ignore', env: startupBenchEnv() });
    best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
  }
  return best;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--quick');
  if (unknown.length > 0) throw new Error(`unknown argument ${unknown[0]} (use --quick for a short run)`);
  const quick = args.includes('--quick');
  const rows: { entry: string; row: BenchRow }[] = [];
  let failed = false;
  for (const name of ENTRIES) {
    const file = path.join(__dirname, `${name}.js`);
    if (!existsSync(file)) {
      console.error(`${name}: not in this build, skipped`);
      continue;
    }
    const mod: unknown = require(file);
    if (!isEntry(mod)) {
      console.error(`${name}: exports no run(), skipped`);
      failed = true;
      continue;
    }
    console.error(`${name}: running${quick ? ' (quick)' : ''}…`);
    try {
      for (const row of await mod.run({ quick })) rows.push({ entry: name, row });
    } catch (err) {
      failed = true;
      console.error(`${name} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
  }
  printTable(rows);
  console.log(`limit, same run: bare node start-up (node -e 0, best of 5) ${show(bareNodeStartupMs(5))} ms`);
  if (failed) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
