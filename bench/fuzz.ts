/**
 * `npm run fuzz`: the wire fuzzer of test/stress/fuzz-run.ts for long runs. Env:
 * LAYERPIPE_FUZZ_RUNS (default 20000), LAYERPIPE_FUZZ_SEED (default random; printed, to replay),
 * LAYERPIPE_FUZZ_BUDGET_S (default no limit), LAYERPIPE_FUZZ_SHRINK_S (default 120).
 * Prints progress, the counts (cases, crashes, hangs, oversize replies, fd leaks...) and a
 * minimal counterexample per property broken. Exit status 1 when any property was broken.
 */
import { buildFixtures } from '../test/stress/fixtures';
import { formatReport, runFuzz } from '../test/stress/fuzz-run';

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  if (!/^\d+$/.test(v)) throw new Error(`${name} must be a non-negative integer, not ${JSON.stringify(v)}`);
  return Number(v);
}

async function main(): Promise<number> {
  const runs = envInt('LAYERPIPE_FUZZ_RUNS', 20_000);
  const seed = envInt('LAYERPIPE_FUZZ_SEED', Math.floor(Math.random() * 2 ** 31));
  const budgetS = envInt('LAYERPIPE_FUZZ_BUDGET_S', 0);
  const shrinkS = envInt('LAYERPIPE_FUZZ_SHRINK_S', 120);
  process.stdout.write(`fuzz: ${runs} cases, seed ${seed} (LAYERPIPE_FUZZ_SEED=${seed} replays this run)\n`);
  const fx = await buildFixtures();
  try {
    const report = await runFuzz(fx, {
      runs, seed, budgetMs: budgetS === 0 ? Number.MAX_SAFE_INTEGER : budgetS * 1000, shrinkBudgetMs: shrinkS * 1000,
      log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`${formatReport(report)}\n`);
    return Object.values(report.counts).some((n) => n > 0) ? 1 : 0;
  } finally {
    fx.remove();
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`fuzz: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(2);
});
