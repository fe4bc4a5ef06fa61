/**
 * The monotonic clock in milliseconds, for measuring spans (round trips, a stream's pace).
 * process.hrtime reads the same clock as performance.now() without node:perf_hooks, which
 * loads nine modules of its own (1-2 ms of a first manifest) when the registry client loads.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
