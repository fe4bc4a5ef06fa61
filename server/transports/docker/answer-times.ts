/**
 * How far away a registry is, from how fast it answers. Every answer takes at least one round
 * trip, and on a loaded machine some take much longer (the registry or this process waited for a
 * CPU), so one slow answer says little; the fastest answer this registry has given is the best
 * estimate of its round trip (the same filter TCP applies to its own RTT samples). A distant
 * registry answers nothing fast; a nearby one on a busy machine answers most requests fast.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { loopWasBusy } from './cpu-contention';

/** One request being timed: when it was sent, and this process's loop use then. */
export interface AnswerTiming {
  readonly askedAt: number;
  readonly loopAtAsk: EventLoopUtilization;
}

export class AnswerTimes {
  private fastest = Infinity;

  start(): AnswerTiming {
    return { askedAt: performance.now(), loopAtAsk: performance.eventLoopUtilization() };
  }

  /** The answer's headers came; a wait on a busy loop measured this process, not the distance, and is left out. */
  answered(timing: AnswerTiming): void {
    if (loopWasBusy(timing.loopAtAsk)) return;
    this.fastest = Math.min(this.fastest, performance.now() - timing.askedAt);
  }

  /** The fastest answer so far (ms); 0 before any counted one, which reads as "near". */
  get fastestMs(): number {
    return this.fastest === Infinity ? 0 : this.fastest;
  }
}
