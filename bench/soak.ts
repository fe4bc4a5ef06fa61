/**
 * `npm run soak`: the soak of test/stress/soak.ts at full length, printing the RSS and fd series
 * and the verdict. Options: --cycles N (default 10000; env LAYERPIPE_SOAK_CYCLES), --sample-every N
 * (default cycles/50). Exit status 1 when the verdict is not flat.
 */
import { buildFixtures } from '../test/stress/fixtures';
import { formatSoak, runSoak } from '../test/stress/soak';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v) || Number(v) === 0) throw new Error(`${name} needs a positive integer, not ${v}`);
  return Number(v);
}

async function main(): Promise<number> {
  const cycles = option('--cycles', Number(process.env.LAYERPIPE_SOAK_CYCLES ?? 10_000));
  const sampleEvery = option('--sample-every', Math.max(1, Math.floor(cycles / 50)));
  const fx = await buildFixtures();
  try {
    const report = await runSoak(fx, { cycles, sampleEvery, log: (l) => process.stdout.write(`${l}\n`) });
    process.stdout.write(`${formatSoak(report)}\n`);
    return report.verdict.startsWith('FLAT') ? 0 : 1;
  } finally {
    fx.remove();
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(2);
});
