/**
 * How far away a registry is, from how fast it answers. Every answer takes at least one round
 * trip, and on a loaded machine some take much longer (the registry or this process waited for a
 * CPU), so one slow answer says little; the fastest answer this registry has given is the best
 * estimate of its round trip (the filter TCP applies to its own RTT samples). A distant registry
 * answers nothing fast; a nearby one on a busy machine still answers most requests fast. A wait
 * stretched by a busy moment only adds an answer slower than the round trip, so every one counts.
 */
import { monotonicMs } from '../../monotonic-clock';

export class AnswerTimes {
  private fastest = Infinity;

  /** A request to the registry is sent: pass the result to answered() when its answer's headers come. */
  asked(): number {
    return monotonicMs();
  }

  answered(askedAt: number): void {
    this.fastest = Math.min(this.fastest, monotonicMs() - askedAt);
  }

  /** The fastest answer so far (ms); 0 before any, which reads as "near". */
  get fastestMs(): number {
    return this.fastest === Infinity ? 0 : this.fastest;
  }
}
