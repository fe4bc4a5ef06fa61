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

/**
 * `xs` in an order drawn from `seed` (Fisher-Yates on a small deterministic generator): rounds
 * that each run every measurement once, in a new order each, give no measurement a fixed
 * neighbour, so what one program leaves behind (a registry still busy, pages being freed) does
 * not always land on the same next one.
 */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  let state = (seed * 0x9e3779b1 + 1) >>> 0;
  const next = (): number => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
