/**
 * The first stream's rate over one sample (blob-parallel.ts decides from it whether to split a
 * blob): judged `sampleMs` after its first byte, over the second half of that time (a
 * connection's opening burst and slow start left out), in three windows of which the median
 * counts: one window slowed by a pause of this process (a busy machine) or sped up by a burst of
 * bytes that waited on the way is left out; a capped connection slows them all. Beside the rate,
 * whether the link set it: not when the reader held the stream back for a quarter of the time,
 * nor when CPU was short (here or on the machine).
 */
import { cpuUseNow, cpuWasShort, type CpuUse } from './cpu-contention';

/** Above this share of a sample's time waiting for its reader, the reader (not the link) set the pace. */
const READER_PACED = 0.25;

export interface SampleVerdict {
  /** Bytes per second, the median of the windows. */
  readonly rate: number;
  /** Whether something other than the link may have set that rate: the reader, or a shortage of CPU. */
  readonly notTheLink: boolean;
}

export class FirstStreamSample {
  /** Bytes since the sample's first byte, and when that came. */
  private bytes = 0;
  private firstByteAt = 0;
  /** The window being measured (bytes and time at its start), and the rates of those done. */
  private window: { readonly bytes: number; readonly ms: number } | undefined;
  private readonly windowRates: number[] = [];
  /** How long the reader has held the stream back in this sample (ms), and since when it is now. */
  private heldMs = 0;
  private heldSince: number | undefined;
  /** The event loop's use when this sample started: a busy process reads slowly whatever the link. */
  private cpuAtStart: CpuUse | undefined;

  constructor(private readonly sampleMs: number) {}

  /** The reader stopped taking bytes. */
  readerStopped(now: number): void {
    this.heldSince ??= now;
  }

  /** The reader wants bytes again. */
  readerWants(now: number): void {
    if (this.heldSince === undefined) return;
    this.heldMs += now - this.heldSince;
    this.heldSince = undefined;
  }

  /** Counts `bytes` that came at `now`; a verdict once sampleMs have gone by and a window is done. */
  count(bytes: number, now: number): SampleVerdict | undefined {
    if (this.bytes === 0) {
      this.firstByteAt = now;
      this.heldMs = 0;
      if (this.heldSince !== undefined) this.heldSince = now;
      this.cpuAtStart = cpuUseNow();
    }
    this.bytes += bytes;
    const flowed = now - this.firstByteAt;
    if (flowed < this.sampleMs / 2) return undefined;
    if (this.window !== undefined && flowed - this.window.ms >= this.sampleMs / 6) {
      this.windowRates.push(((this.bytes - this.window.bytes) * 1000) / (flowed - this.window.ms));
      this.window = undefined;
    }
    this.window ??= { bytes: this.bytes, ms: flowed };
    // Later than sampleMs when chunks come far apart: a window must be done.
    if (flowed < this.sampleMs || this.windowRates.length === 0) return undefined;
    const rate = [...this.windowRates].sort((a, b) => a - b)[Math.floor(this.windowRates.length / 2)]!;
    const held = this.heldMs + (this.heldSince === undefined ? 0 : now - this.heldSince);
    const cpuShort = this.cpuAtStart !== undefined && cpuWasShort(this.cpuAtStart);
    return { rate, notTheLink: held > flowed * READER_PACED || cpuShort };
  }

  /** Starts a new sample at the next byte (a link can slow down, a burst can mislead once). */
  restart(): void {
    this.bytes = 0;
    this.window = undefined;
    this.windowRates.length = 0;
  }
}
