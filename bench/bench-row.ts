/** One result line of a benchmark, as `npm run bench` collects them from every bench's run(). */
export interface BenchRow {
  name: string;
  layerpipe: number;
  skopeo?: number;
  unit: string;
  ratio?: number;
  target?: string;
  limit?: string;
}
