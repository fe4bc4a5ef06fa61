/**
 * An explicit, start-up-time memory guard for streaming.
 *
 * Node allocates a fresh buffer for every read of a socket or file stream (64 KiB for TCP, one
 * per decrypted record for TLS), and V8 frees dead ones only at a GC, which it starts for them
 * only after ~64 MB of "external memory pressure"; the few hundred bytes of JavaScript garbage
 * per chunk are too little to bring a young-generation collection sooner. Streaming at hundreds
 * of MB/s, those buffers were most of the proxy's peak RSS, and the glibc heap they came from
 * keeps its high-water mark after they are freed. A young-generation collection is cheap (only
 * the few live objects are copied), so the guard runs one every `everyBytes` bytes copied,
 * whichever transfer copied them.
 *
 * Why a collection rather than reusing one read buffer (net's `onread`): undici reads its
 * sockets with 'readable' and socket.read(), which an `onread` socket never serves, and the body
 * chunks it hands on are views into the socket's chunk, which may wait in stream queues (a full
 * ring, a paused reader, a range piece held); a reused buffer would be overwritten under them.
 * Measured with memory-bench (4 × 64 MiB at once, one connection per blob): 65 MiB peak with the
 * guard, 99 MiB without (the glibc heap keeps ~30 MiB of freed socket buffers).
 *
 * It is made once, at start-up (the CLI), before any transfer; every copy reports its bytes to
 * it. STREAMING_V8_FLAGS are set when a session has loaded its open path (Session.openImage), or at
 * the first byte when no image was opened first. The collector itself is taken at the first collection, so
 * a proxy that streams nothing makes no extra context (~0.15 MiB of heap once made).
 * `--memory-guard=false` (or LAYERPIPE_MEMORY_GUARD=0) leaves it out; test/e2e/registry/
 * stream-memory.test.ts pins what it buys.
 */

type MinorCollect = (options: { type: 'minor' }) => void;

/**
 * Bytes copied between two collections. 2 MiB rather than 4 took ~1.2 MiB off memory-bench's
 * streaming peak (63.2-63.8 against 64.6-64.9 MiB, alternating runs, young generation kept at
 * its start-up size), with proxy CPU per GB unchanged within noise (paired runs: GetBlob -0.04
 * and -0.01, GetRawBlob +0.14 and +0.01 CPU-s/GB).
 */
export const DEFAULT_GUARD_BYTES = 2 * 1024 * 1024;

/**
 * V8 settings for a streaming process. The young generation stays at its start-up size (1 MiB
 * semi-spaces): V8 doubles it as objects keep surviving, as they do while the first image's
 * modules and configuration are set up and while a long stream's chunks wait in queues, and it
 * reached 4-8 MiB resident while streaming, for a heap whose live young objects are a few hundred
 * KiB. They are set once the open path is loaded, before the configuration is read: V8 takes a
 * code cache (the bundle's packs, and Node's for each built-in module: tls, net, streams) only
 * under the flags it was made with, so set at start-up they cost the first OpenImage on a
 * registry ~40 M instructions (750 against 712 M; bench/startup-instructions.ts), and set at the
 * first byte they come after the growth (memory-bench: 4 MiB of young generation at the
 * streaming peak, against 2). TurboFan stays on: turning it off (--max-opt=1)
 * saved ~3.5 MiB more of the streaming peak (65 against 69 MiB) but cost the 1.0 stream
 * delivery's proxy ~20% more CPU per MB (2.61 against 2.16 ms/MB, same idle machine).
 */
const STREAMING_V8_FLAGS: readonly string[] = ['--semi-space-growth-factor=1'];

export class MemoryGuard {
  private bytesSinceCollect = 0;
  private streamingFlagsSet = false;
  /** undefined until the first collection; null when V8 refused to expose its collector. */
  private collect: MinorCollect | null | undefined;

  private constructor(private readonly everyBytes: number) {}

  static create(everyBytes = DEFAULT_GUARD_BYTES): MemoryGuard {
    return new MemoryGuard(everyBytes);
  }

  /** Sets STREAMING_V8_FLAGS, once: call it when the code a session runs is loaded, before it reads configuration. */
  setStreamingFlags(): void {
    if (this.streamingFlagsSet) return;
    this.streamingFlagsSet = true;
    const { setFlagsFromString } = require('node:v8') as typeof import('node:v8');
    for (const flag of STREAMING_V8_FLAGS) setFlagsFromString(flag);
  }

  /** Called by every copy for every chunk it hands to a sink. */
  count(bytes: number): void {
    this.setStreamingFlags();
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
