/**
 * Work several callers wait for at once (a registry ping, a bearer token): done once, and each
 * caller may give up on its own. The work itself is aborted only when nobody waits any more,
 * so one caller's cancellation never fails another's request, and an abandoned request does
 * not keep a connection busy.
 */
import { CancelledError } from '../../../protocol/errors';

export class SharedOperation<T> {
  private readonly controller = new AbortController();
  private readonly result: Promise<T>;
  private waiters = 0;
  private settled = false;

  constructor(
    /** For messages: "pinging container registry …". */
    private readonly what: string,
    start: (signal: AbortSignal) => Promise<T>,
  ) {
    this.result = start(this.controller.signal);
    this.result.then(
      () => {
        this.settled = true;
      },
      () => {
        this.settled = true;
      },
    );
  }

  /** Whether a new caller may still join: false once it was abandoned (its work aborted). */
  get joinable(): boolean {
    return !this.controller.signal.aborted;
  }

  /** The result, or a CancelledError as soon as `signal` aborts (the others keep waiting). */
  join(signal: AbortSignal | undefined): Promise<T> {
    if (signal?.aborted) return Promise.reject(new CancelledError(`${this.what}: cancelled`));
    this.waiters++;
    return new Promise<T>((resolve, reject) => {
      let left = false;
      const leave = (): void => {
        if (left) return;
        left = true;
        signal?.removeEventListener('abort', onAbort);
        this.waiters--;
        if (this.waiters === 0 && !this.settled) this.controller.abort(new CancelledError(`${this.what}: nobody waits for it any more`));
      };
      const onAbort = (): void => {
        leave();
        reject(new CancelledError(`${this.what}: cancelled`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.result.then(
        (value) => {
          if (left) return;
          leave();
          resolve(value);
        },
        (err: unknown) => {
          if (left) return;
          leave();
          reject(err);
        },
      );
    });
  }
}
