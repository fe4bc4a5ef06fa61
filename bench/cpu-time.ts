/**
 * CPU time spent by this process and a proxy over one measurement, so protocol-1-bench can say
 * what a delivery costs per MB on a machine busy with other work, where throughput says little.
 */
import { readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc reports times in these ticks. */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) process `pid` has used so far; NaN when /proc cannot tell. */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th of them.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

export interface CpuSpent {
  /** CPU seconds of this process (the client). */
  readonly client: number;
  /** CPU seconds of the proxy. */
  readonly proxy: number;
}

/** Starts counting now; the returned function tells what was spent since. */
export function startCpuCount(proxyPid: number | undefined): () => CpuSpent {
  const client = process.cpuUsage();
  const proxy = processCpuSeconds(proxyPid);
  return () => {
    const used = process.cpuUsage(client);
    return { client: (used.user + used.system) / 1e6, proxy: processCpuSeconds(proxyPid) - proxy };
  };
}
