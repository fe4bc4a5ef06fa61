/**
 * A lifetime: a session's, an image's, a transfer's. Ending it aborts its signal with the
 * reason; a child lifetime ends with its parent. Children detach from the parent when they
 * end, so a long session does not collect a listener per finished transfer.
 */
import { setMaxListeners } from 'node:events';

/**
 * Children a lifetime may have at once without Node's leak warning: a session has up to 256
 * requests in flight and 256 transfers held (server/wires/skopeo, service/session.ts), each a
 * child; a real leak would still pass this bound and be reported.
 */
const MAX_CHILDREN = 1024;

export class Lifetime {
  private readonly controller = new AbortController();
  private readonly detach: () => void;

  constructor(parent?: AbortSignal) {
    setMaxListeners(MAX_CHILDREN, this.controller.signal);
    if (parent === undefined) {
      this.detach = () => undefined;
      return;
    }
    const onParentAbort = (): void => this.end(parent.reason);
    if (parent.aborted) {
      this.detach = () => undefined;
      this.controller.abort(parent.reason);
      return;
    }
    parent.addEventListener('abort', onParentAbort, { once: true });
    this.detach = () => parent.removeEventListener('abort', onParentAbort);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get ended(): boolean {
    return this.controller.signal.aborted;
  }

  /** Ends this lifetime (and its children) with `reason`; later calls do nothing. */
  end(reason: unknown): void {
    this.detach();
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** Lets go of the parent without aborting: the work this lifetime covered is done. */
  release(): void {
    this.detach();
  }
}
