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
 * it. The collector itself is taken at the first collection, so a proxy that streams nothing
 * loads neither node:v8 nor node:vm and makes no extra context. `--memory-guard=false` (or
 * LAYERPIPE_MEMORY_GUARD=0) leaves it out; the memory test in test/methods pins what it buys.
 */

type MinorCollect = (options: { type: 'minor' }) => void;

export const DEFAULT_GUARD_BYTES = 4 * 1024 * 1024;

export class MemoryGuard {
  private bytesSinceCollect = 0;
  /** undefined until the first collection; null when V8 refused to expose its collector. */
  private collect: MinorCollect | null | undefined;

  private constructor(private readonly everyBytes: number) {}

  static create(everyBytes = DEFAULT_GUARD_BYTES): MemoryGuard {
    return new MemoryGuard(everyBytes);
  }

  /** Called by every copy for every chunk it hands to a sink. */
  count(bytes: number): void {
    this.bytesSinceCollect += bytes;
    if (this.bytesSinceCollect < this.everyBytes) return;
    this.bytesSinceCollect = 0;
    this.collect ??= minorCollector();
    this.collect?.({ type: 'minor' });
  }
}

/**
 * V8's collector, or null when V8 refuses to expose it. `--expose-gc` is set before the
 * collector is taken from a fresh context, so the main global gains no `gc`.
 */
function minorCollector(): MinorCollect | null {
  try {
    (require('node:v8') as typeof import('node:v8')).setFlagsFromString('--expose-gc');
    const gc: unknown = (require('node:vm') as typeof import('node:vm')).runInNewContext('gc');
    return typeof gc === 'function' ? (gc as MinorCollect) : null;
  } catch {
    return null;
  }
}
