/**
 * The two ways the tar walker gets archive bytes: by offset from a plain file (bodies are
 * skipped by moving the offset), or in order from a decompressing stream (bodies are read and
 * copied to a spill file, since a compressed archive cannot be read by offset).
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { TarByteSource } from './tar-index';

const READ_AHEAD = 64 * 1024;
const MAX_WRITES_IN_FLIGHT = 4;

/** An uncompressed archive file: header blocks are read with a small read-ahead, bodies skipped. */
export class FileByteSource implements TarByteSource {
  private position = 0;
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly fileSize: number,
  ) {}

  async read(length: number): Promise<Buffer> {
    const end = Math.min(this.position + length, this.fileSize);
    if (this.position < this.bufferStart || end > this.bufferStart + this.buffer.length) {
      const want = Math.min(Math.max(length, READ_AHEAD), this.fileSize - this.position);
      const chunk = Buffer.alloc(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await this.handle.read(chunk, got, want - got, this.position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      this.buffer = chunk.subarray(0, got);
      this.bufferStart = this.position;
    }
    const from = this.position - this.bufferStart;
    const out = this.buffer.subarray(from, Math.min(from + length, this.buffer.length));
    this.position += out.length;
    return out;
  }

  async skip(length: number): Promise<boolean> {
    if (this.position + length > this.fileSize) return false;
    this.position += length;
    return true;
  }
}

/**
 * A decompressed stream; every byte pulled from it is first appended to `spill`, so that the
 * offsets the walker records are offsets in the spill file.
 */
export class SpillingStreamSource implements TarByteSource {
  private readonly chunks: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private written = 0;
  private done = false;
  private readonly inFlight = new Set<Promise<void>>();
  private writeError: Error | undefined;

  constructor(
    stream: Readable,
    private readonly spill: FileHandle,
  ) {
    this.chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async pull(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.chunks.next();
    if (next.done === true) {
      this.done = true;
      await this.flush();
      return false;
    }
    const chunk = next.value;
    // Writes run on libuv's pool while the next chunk is inflated; a few in flight bound memory.
    while (this.inFlight.size >= MAX_WRITES_IN_FLIGHT) await Promise.race(this.inFlight);
    if (this.writeError !== undefined) throw this.writeError;
    const write = this.writeAt(chunk, this.written).catch((err: unknown) => {
      this.writeError ??= err instanceof Error ? err : new Error(String(err));
    });
    this.written += chunk.length;
    this.inFlight.add(write);
    void write.finally(() => this.inFlight.delete(write));
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    return true;
  }

  private async writeAt(chunk: Buffer, position: number): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.spill.write(chunk, off, chunk.length - off, position + off);
      off += bytesWritten;
    }
  }

  /** Waits for every spill write; throws the first that failed. */
  async flush(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.writeError !== undefined) throw this.writeError;
  }

  async read(length: number): Promise<Buffer> {
    while (this.pending.length < length && (await this.pull()));
    const out = this.pending.subarray(0, Math.min(length, this.pending.length));
    this.pending = this.pending.subarray(out.length);
    return out;
  }

  async skip(length: number): Promise<boolean> {
    let left = length;
    for (;;) {
      const take = Math.min(left, this.pending.length);
      this.pending = this.pending.subarray(take);
      left -= take;
      if (left === 0) return true;
      if (!(await this.pull())) return false;
    }
  }

  /**
   * Copies the rest of the stream (data after the end-of-archive marker) so the decompressor
   * checks its trailer, and waits until every byte is in the spill file.
   */
  async drain(): Promise<void> {
    this.pending = Buffer.alloc(0);
    while (await this.pull()) this.pending = Buffer.alloc(0);
    await this.flush();
  }
}
