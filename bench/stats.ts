/** The statistics the benches print, in one place. */

/** The median of `xs` (the mean of the two middle values for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The median of the differences a[i] − b[i] of paired measurements, with a bootstrap 90%
 * interval (2000 resamplings).
 */
export function pairedDifference(a: readonly number[], b: readonly number[]): { median: number; low: number; high: number } {
  const differences = a.map((x, i) => x - (b[i] ?? NaN));
  const resampled: number[] = [];
  for (let k = 0; k < 2000; k++) resampled.push(median(differences.map(() => differences[Math.floor(Math.random() * differences.length)]!)));
  resampled.sort((x, y) => x - y);
  return { median: median(differences), low: resampled[100]!, high: resampled[1899]! };
}
