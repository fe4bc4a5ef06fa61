/**
 * An explicit, start-up-time memory guard for streaming.
 *
 * Node allocates a fresh buffer for every read of a socket or file stream, and V8 frees dead
 * ones only at a GC, which it starts for them only after tens of MB of "external memory
 * pressure". Streaming at hundreds of MB/s, that garbage was most of the proxy's peak RSS.
 * A young-generation collection is cheap (only the few live objects are copied), so the
 * guard runs one every `everyBytes` bytes copied, whichever transfer copied them.
 *
 * It is made once, at start-up (the CLI), before any transfer; every copy reports its bytes to
 * it. `--memory-guard=false` (or LAYERPIPE_MEMORY_GUARD=0) leaves it out; the memory test in
 * test/methods pins what it buys.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type MinorCollect = (options: { type: 'minor' }) => void;

export const DEFAULT_GUARD_BYTES = 4 * 1024 * 1024;

export class MemoryGuard {
  private bytesSinceCollect = 0;

  private constructor(
    private readonly collect: MinorCollect,
    private readonly everyBytes: number,
  ) {}

  /**
   * A guard, or undefined when V8 refuses to expose its collector. `--expose-gc` is set before
   * the collector is taken from a fresh context, so the main global gains no `gc`.
   */
  static create(everyBytes = DEFAULT_GUARD_BYTES): MemoryGuard | undefined {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      return typeof gc === 'function' ? new MemoryGuard(gc as MinorCollect, everyBytes) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Called by every copy for every chunk it hands to a sink. */
  count(bytes: number): void {
    this.bytesSinceCollect += bytes;
    if (this.bytesSinceCollect < this.everyBytes) return;
    this.bytesSinceCollect = 0;
    this.collect({ type: 'minor' });
  }
}
