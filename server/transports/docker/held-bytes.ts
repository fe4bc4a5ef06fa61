/**
 * Bytes that parallel blobs (blob-parallel.ts) hold ahead of their readers, counted across every
 * blob of one registry pool: a one-session process, or a service's shared pool. Each blob's own
 * window bounds it per blob (windowPieces × chunkBytes); this bounds the sum, so four large blobs
 * split at once over a slow link do not hold four windows (~40 MiB each by default). A blob whose
 * pieces ahead find the sum at its limit stops them reading, and starts no new piece, until some
 * blob hands bytes on; the piece its reader is at always flows, so every blob still progresses.
 */
export class HeldBytes {
  private total = 0;
  private peak = 0;
  private readonly waiting = new Set<() => void>();

  get bytes(): number {
    return this.total;
  }

  /** The most held at once so far (for tests and benchmarks). */
  get peakBytes(): number {
    return this.peak;
  }

  add(n: number): void {
    this.total += n;
    this.peak = Math.max(this.peak, this.total);
  }

  /** Bytes handed on or dropped: each blob waiting for room is told once. */
  remove(n: number): void {
    this.total -= n;
    if (n <= 0 || this.waiting.size === 0) return;
    const woken = [...this.waiting];
    this.waiting.clear();
    for (const wake of woken) wake();
  }

  /** `wake` is called once, at the next removal. */
  waitForRoom(wake: () => void): void {
    this.waiting.add(wake);
  }

  forget(wake: () => void): void {
    this.waiting.delete(wake);
  }
}
