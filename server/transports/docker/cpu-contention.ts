/**
 * Whether what was measured over a span of time (a stream's pace, how long an answer took) was
 * set by a shortage of CPU rather than by the link. Parallel ranges help a link capped per
 * connection; on a machine short of CPU more connections only add work (and memory: the pieces
 * held ahead), so a slow measure taken while CPU was short does not count as a slow link.
 */
import { readFileSync } from 'node:fs';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { monotonicMs } from '../../monotonic-clock';

/** Linux reports /proc/stat in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const MS_PER_TICK = 10;
/** Below this many idle CPUs on average (summed over all of them), the machine had none to spare. */
const SPARE_CPUS = 0.5;

/**
 * The event loop's use, from node:perf_hooks, which loads at the first stream sampled (a large
 * blob), not with the registry client: a first manifest does not need its nine modules.
 */
function loopUse(since?: EventLoopUtilization): EventLoopUtilization {
  return (require('node:perf_hooks') as typeof import('node:perf_hooks')).performance.eventLoopUtilization(since);
}

/** Whether this process's event loop was busy for most of the time since `since`. */
export function loopWasBusy(since: EventLoopUtilization | undefined): boolean {
  return loopUse(since).utilization > 0.5;
}

/** This process's loop use and the whole machine's idle time, at one moment. */
export interface CpuUse {
  readonly at: number;
  readonly loop: EventLoopUtilization;
  /** Idle (and I/O wait) ticks of all CPUs together; undefined where /proc/stat cannot be read. */
  readonly idleTicks: number | undefined;
}

export function cpuUseNow(): CpuUse {
  return { at: monotonicMs(), loop: loopUse(), idleTicks: machineIdleTicks() };
}

/** Whether CPU was short since `since`: this loop busy most of the time, or the machine with less than half a CPU idle. */
export function cpuWasShort(since: CpuUse): boolean {
  if (loopWasBusy(since.loop)) return true;
  const idle = machineIdleTicks();
  if (idle === undefined || since.idleTicks === undefined) return false;
  const elapsedMs = monotonicMs() - since.at;
  return elapsedMs > 0 && ((idle - since.idleTicks) * MS_PER_TICK) / elapsedMs < SPARE_CPUS;
}

/** The first line of /proc/stat: `cpu user nice system idle iowait ...`, every CPU summed. */
function machineIdleTicks(): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'latin1');
  } catch {
    return undefined;
  }
  const fields = /^cpu\s+(\d+) (\d+) (\d+) (\d+) (\d+)/.exec(text);
  return fields === null ? undefined : Number(fields[4]) + Number(fields[5]);
}
