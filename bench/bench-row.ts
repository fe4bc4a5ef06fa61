/**
 * One line of the benchmark table `npm run bench` prints: every bench entry exports
 * `run(options: { quick: boolean }): Promise<BenchRow[]>`.
 */
export interface BenchRow {
  /** What was measured, e.g. "spawn → Initialize". */
  name: string;
  /** layerpipe's figure, in `unit`. */
  layerpipe: number;
  /** skopeo's figure in the same run, when skopeo does the same thing. */
  skopeo?: number;
  /** "ms", "MiB", "MB/s"… */
  unit: string;
  /** The ratio the target is about (the row's `target` says to what), e.g. layerpipe / skopeo. */
  ratio?: number;
  /** The target in words, e.g. "≤ 1.15× node -e 0". */
  target?: string;
  /** Whether the figure is within its target: "ok" or "over", when it has one. */
  limit?: string;
}
