/**
 * The soak, short (LAYERPIPE_SOAK_CYCLES, default 500 here; `npm run soak` runs 10,000): the
 * proxy's fds stay at their baseline, its RSS growth stays bounded, every abandonment pattern
 * is survived, and it still answers correctly at the end. See soak.ts for the tolerances.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildFixtures, type Fixtures } from './fixtures';
import { formatSoak, RSS_GROWTH_MIB, runSoak, type SoakReport } from './soak';

const CYCLES = Number(process.env.LAYERPIPE_SOAK_CYCLES ?? 500);

describe(`soak: ${CYCLES} open/read/finish/close cycles with abandoned transfers`, () => {
  let fx: Fixtures;
  let report: SoakReport;

  before(async () => {
    fx = await buildFixtures();
    report = await runSoak(fx, { cycles: CYCLES, sampleEvery: Math.max(1, Math.floor(CYCLES / 10)) });
    process.stdout.write(`${formatSoak(report)}\n`);
  });
  after(() => fx?.remove());

  it('every cycle ran', () => {
    assert.equal(report.cycles, CYCLES);
  });

  it('the proxy holds no more fds than at its baseline, at any sample', () => {
    const worst = Math.max(...report.samples.map((s) => s.fds));
    assert.ok(report.fdsFlat, `fds rose from ${report.baselineFds} to ${worst}: ${report.samples.map((s) => `${s.cycle}:${s.fds}`).join(' ')}`);
  });

  it(`RSS grows by at most ${RSS_GROWTH_MIB} MiB`, () => {
    assert.ok(report.rssGrowthMiB <= RSS_GROWTH_MIB, `RSS grew ${report.rssGrowthMiB.toFixed(1)} MiB: ${report.samples.map((s) => `${s.cycle}:${s.rssMiB.toFixed(0)}`).join(' ')}`);
  });

  it('clients dying mid-transfer leave proxies that exit 0 with nothing on stderr', () => {
    assert.ok(report.dyingClients.exits > 0);
    assert.equal(report.dyingClients.clean, report.dyingClients.exits, report.violations.filter((v) => v.kind === 'crash').map((v) => v.detail).slice(0, 3).join('\n'));
  });

  it('every reply was well-formed and every answer correct; the proxy still answers correctly at the end', () => {
    assert.deepEqual(report.violations.slice(0, 5), []);
    assert.ok(report.finalCheckOk, 'the final check failed');
  });
});
