/**
 * Time in registry requests: the deadline of one operation (--command-timeout) combined with
 * the caller's cancellation, backoff between tries, and Retry-After. Whether to retry at all is
 * isTransient's answer (protocol/errors.ts); this file only says when, and why a try stopped.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { CancelledError, RetryableError } from '../../../protocol/errors';

const MAX_RETRY_AFTER_MS = 60_000;

/**
 * A signal that fires when the caller aborts or the operation's time is up, and the error that
 * tells the two apart: a timeout may be tried again later (RetryableError), a caller who went
 * away may not (CancelledError).
 */
export class Deadline {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private readonly onOuterAbort = (): void => this.controller.abort(new CancelledError('cancelled by the caller'));

  constructor(private readonly outer: AbortSignal | undefined, private readonly timeoutMs: number | undefined) {
    this.signal = this.controller.signal;
    if (outer?.aborted) this.onOuterAbort();
    else outer?.addEventListener('abort', this.onOuterAbort, { once: true });
    if (timeoutMs !== undefined && timeoutMs > 0 && !this.signal.aborted) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.controller.abort(new RetryableError(`timed out after ${timeoutMs} ms`));
      }, timeoutMs);
    }
  }

  /** The error for a try this deadline stopped, or undefined when it did not stop it. */
  stopped(what: string, cause?: unknown): RetryableError | CancelledError | undefined {
    if (this.timedOut) return new RetryableError(`${what}: timed out after ${this.timeoutMs} ms (--command-timeout)`, { cause });
    if (this.signal.aborted) return new CancelledError(`${what}: cancelled`, { cause });
    return undefined;
  }

  /** Throws the stopped() error, if any. */
  check(what: string, cause?: unknown): void {
    const err = this.stopped(what, cause);
    if (err !== undefined) throw err;
  }

  /**
   * Stops the clock and lets go of the caller's signal: a response body handed on (a blob) is
   * followed by its reader, which destroys it when its own signal aborts.
   */
  release(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.outer?.removeEventListener('abort', this.onOuterAbort);
  }
}

/** Exponential backoff: `first` ms before the second try, doubling, at most `max`. */
export function backoffMs(attempt: number, first: number, max: number): number {
  return Math.min(first * 2 ** Math.max(0, attempt - 1), max);
}

/** Retry-After as seconds or an HTTP date, capped; undefined when absent or unusable. */
export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  let ms: number;
  if (/^\d+$/.test(text.trim())) ms = Number(text.trim()) * 1000;
  else {
    const when = Date.parse(text);
    if (Number.isNaN(when)) return undefined;
    ms = when - Date.now();
    if (ms <= 0) return undefined;
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/** Waits `ms`, or less when `signal` aborts (resolving either way: the caller checks why). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}
