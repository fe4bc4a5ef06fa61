/**
 * What a proxy's resident set is made of at its peak, for memory-bench --breakdown. Loaded into
 * the proxy with NODE_OPTIONS=--require (never by the proxy itself): every 10 ms it reads
 * process.memoryUsage(), and whenever the RSS passes its previous peak by 256 KiB it takes
 * /proc/self/smaps apart and writes the snapshot to $LAYERPIPE_MEMORY_SAMPLE_FILE (synchronously,
 * so a proxy killed at the end leaves its last peak behind).
 *
 * Parts, in MiB: `binary` the node executable's pages (file-backed text and data), `libraries`
 * other file-backed pages, `v8Heap` the JavaScript heap (committed, not all of it resident),
 * `arrayBuffers` backing
 * stores of ArrayBuffers and Buffers not yet collected (socket reads among them), `mallocMain`
 * glibc's main heap ([heap]: the backing stores live there), `otherAnon` the rest of the
 * anonymous memory less `v8Heap` (transfer rings, thread arenas and stacks; 0 when the heap's
 * committed pages are not all resident), `v8Spaces` the heap's resident MiB by space. Figures taken with it include the sampler's own cost.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

export const SAMPLE_FILE_ENV = 'LAYERPIPE_MEMORY_SAMPLE_FILE';

export interface MemoryBreakdown {
  readonly rss: number;
  readonly binary: number;
  readonly libraries: number;
  readonly v8Heap: number;
  readonly arrayBuffers: number;
  readonly mallocMain: number;
  readonly otherAnon: number;
  /** The V8 heap's spaces, resident MiB each (physical_space_size): which one grows while streaming. */
  readonly v8Spaces: Readonly<Record<string, number>>;
}

const MiB = 1024 * 1024;
const STEP_BYTES = 256 * 1024;

/** Resident kB per kind of mapping, from /proc/self/smaps. */
function residentByMapping(executable: string): { binary: number; libraries: number; mallocMain: number; anon: number } {
  const sums = { binary: 0, libraries: 0, mallocMain: 0, anon: 0 };
  let kind: keyof typeof sums = 'anon';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      const name = header[1] ?? '';
      if (name === executable) kind = 'binary';
      else if (name === '[heap]') kind = 'mallocMain';
      else if (name.startsWith('/')) kind = 'libraries';
      else kind = 'anon'; // anonymous, [stack], [vdso]…
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB$/.exec(line);
    if (rss !== null) sums[kind] += Number(rss[1]) / 1024;
  }
  return sums;
}

function snapshot(executable: string): MemoryBreakdown {
  const usage = process.memoryUsage();
  const maps = residentByMapping(executable);
  const v8Heap = usage.heapTotal / MiB;
  return {
    rss: usage.rss / MiB,
    binary: maps.binary,
    libraries: maps.libraries,
    v8Heap,
    arrayBuffers: usage.arrayBuffers / MiB,
    mallocMain: maps.mallocMain,
    otherAnon: Math.max(0, maps.anon - v8Heap),
    v8Spaces: Object.fromEntries(getHeapSpaceStatistics().map((space) => [space.space_name.replace(/_space$/, ''), space.physical_space_size / MiB])),
  };
}

function startSampling(file: string): void {
  const executable = realpathSync(process.execPath);
  let peak = 0;
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss < peak + STEP_BYTES) return;
    peak = rss;
    writeFileSync(file, JSON.stringify(snapshot(executable)));
  }, 10);
  timer.unref();
}

const target = process.env[SAMPLE_FILE_ENV];
if (target !== undefined && target !== '' && require.main !== module) startSampling(target);
