export interface BenchRow { name: string; layerpipe: number; skopeo?: number; unit: string; ratio?: number; target?: string; limit?: string }
