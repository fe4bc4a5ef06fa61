/**
 * The wire fuzzer, CI-sized: a bounded number of fast-check cases against the real
 * bin/layerpipe over a real socketpair (see fuzz-run.ts), then one test per property, each
 * failing with its minimal counterexample. `npm run fuzz` runs the same thing for long.
 *
 * Env: LAYERPIPE_FUZZ_RUNS (default 600 here), LAYERPIPE_FUZZ_SEED (default fixed, so CI is
 * repeatable; `npm run fuzz` draws a random one), LAYERPIPE_FUZZ_BUDGET_S (default 35).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildFixtures, type Fixtures } from './fixtures';
import { formatReport, PROPERTIES, runFuzz, type FuzzReport } from './fuzz-run';
import { VIOLATION_KINDS } from './reply-checks';

const envInt = (name: string, fallback: number): number => {
  const v = process.env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback;
};

const RUNS = envInt('LAYERPIPE_FUZZ_RUNS', 600);
const SEED = envInt('LAYERPIPE_FUZZ_SEED', 20_240_601);
const BUDGET_MS = envInt('LAYERPIPE_FUZZ_BUDGET_S', 35) * 1000;
/** Enough cases that the run means something even when hangs eat into the time budget. */
const MIN_CASES = Math.min(RUNS, 100);

describe('wire fuzzer (property-based, real proxy over a socketpair)', () => {
  let fx: Fixtures;
  let report: FuzzReport;

  before(async () => {
    fx = await buildFixtures();
    report = await runFuzz(fx, { runs: RUNS, seed: SEED, budgetMs: BUDGET_MS, shrinkBudgetMs: 15_000 });
    process.stdout.write(`${formatReport(report)}\n`);
  });
  after(() => fx?.remove());

  it(`runs at least ${MIN_CASES} cases`, () => {
    assert.ok(report.cases >= MIN_CASES, `only ${report.cases} cases ran within the time budget`);
  });

  for (const kind of VIOLATION_KINDS) {
    it(`property: ${PROPERTIES[kind]}`, () => {
      const example = report.counterexamples.find((c) => c.kind === kind);
      const shown = example === undefined ? '' : `\nminimal case (seed ${report.seed}, path "${example.path}"):\n${example.actions}\n${example.details.slice(0, 3).map((d) => `-> ${d}`).join('\n')}`;
      assert.equal(report.counts[kind], 0, `${report.counts[kind]} violations in ${report.cases} cases${shown}`);
    });
  }
});
