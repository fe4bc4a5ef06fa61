/**
 * A lifetime: a session's, an image's, a transfer's, a request's. Ending it ends its children and
 * aborts its signal with the reason. Children of a lifetime are kept in a set, not as listeners
 * on its signal, and leave it when they end or are released, so a long session does not collect
 * one per finished transfer. The AbortController behind the signal is made when the signal is
 * first asked for: a proxy's first AbortController and first listener on one cost it some 2 ms
 * before it can answer Initialize, which needs neither.
 */
import { setMaxListeners } from 'node:events';

/**
 * Listeners a lifetime's signal may have at once without Node's leak warning: an image's signal
 * is the owner of each of its transfers, up to 256 held per session (service/session.ts); a
 * real leak would still pass this bound and be reported.
 */
const MAX_LISTENERS = 1024;

const stayAttached = (): void => undefined;

export class Lifetime {
  private controller: AbortController | undefined;
  private ending: { readonly reason: unknown } | undefined;
  private readonly children = new Set<Lifetime>();
  private readonly detach: () => void;

  /** `parent`: the lifetime this one ends with, or the signal of work it may not outlive. */
  constructor(parent?: Lifetime | AbortSignal) {
    if (parent instanceof Lifetime) {
      if (parent.ending !== undefined) {
        this.ending = parent.ending;
        this.detach = stayAttached;
        return;
      }
      parent.children.add(this);
      this.detach = () => parent.children.delete(this);
    } else if (parent !== undefined) {
      if (parent.aborted) {
        this.ending = { reason: parent.reason };
        this.detach = stayAttached;
        return;
      }
      const onParentAbort = (): void => this.end(parent.reason);
      parent.addEventListener('abort', onParentAbort, { once: true });
      this.detach = () => parent.removeEventListener('abort', onParentAbort);
    } else {
      this.detach = stayAttached;
    }
  }

  /** Aborts, with the reason, when this lifetime ends (already aborted if it has). */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      setMaxListeners(MAX_LISTENERS, this.controller.signal);
      if (this.ending !== undefined) this.controller.abort(this.ending.reason);
    }
    return this.controller.signal;
  }

  /** Lifetimes ending with this one now (they leave when they end or are released). */
  get childCount(): number {
    return this.children.size;
  }

  get ended(): boolean {
    return this.ending !== undefined;
  }

  /** Ends this lifetime (and its children) with `reason`; later calls do nothing. */
  end(reason: unknown): void {
    this.detach();
    if (this.ending !== undefined) return;
    this.ending = { reason };
    // The signal first, then the children, as when children listened on it.
    this.controller?.abort(reason);
    for (const child of [...this.children]) child.end(reason);
    this.children.clear();
  }

  /** Lets go of the parent without ending: the work this lifetime covered is done. */
  release(): void {
    this.detach();
  }
}
