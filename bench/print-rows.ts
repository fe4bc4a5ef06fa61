/** Prints BenchRows as a plain table, for a bench run on its own (`npm run bench` has its own table). */
import type { BenchRow } from './bench-row';
import { num } from './throughput';

export function printRows(title: string, rows: readonly BenchRow[]): void {
  console.log(`\n${title}`);
  console.log(`${'measurement'.padEnd(54)}${'layerpipe'.padEnd(11)}${'skopeo'.padEnd(9)}${'unit'.padEnd(6)}${'ratio'.padEnd(7)}target`);
  for (const r of rows) {
    const target = r.target === undefined ? (r.limit ?? '') : `${r.target} (${r.limit ?? ''})`;
    console.log(`${r.name.padEnd(54)}${num(r.layerpipe).padEnd(11)}${(r.skopeo === undefined ? '' : num(r.skopeo)).padEnd(9)}${r.unit.padEnd(6)}${(r.ratio === undefined ? '' : num(r.ratio, 2)).padEnd(7)}${target}`);
  }
}
