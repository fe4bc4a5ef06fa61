/**
 * A session: one client connection, whatever the wire. It owns the images the client opened
 * and the transfers running for them, each under a lifetime (the session's, an image's, a
 * transfer's): closing an image ends its transfers with a clear error, closing the session
 * ends everything and releases pipes, file handles, network requests and temporary files.
 *
 * A wire decodes a request, calls call(), and delivers the result: its value, and for a
 * byte-returning method the body, through a sink of the wire's choosing (startTransfer).
 */
import { METHODS, isMethodName } from '../../protocol/methods';
import { CancelledError, clipInput, InvalidArgumentError, NotInitializedError, UnknownMethodError } from '../../protocol/errors';
import type { OpenedImage } from '../image/image';
import type { SystemContext } from '../image/types';
import type { TransferBody } from '../transfer/body';
import type { MemoryGuard } from '../transfer/memory-guard';
import type { Sink } from '../transfer/sink';
import { TransferTable, type Transfer } from '../transfer/table';
import { checkArguments } from './arguments';
import { Lifetime } from './lifetime';
import { METHOD_IMPLEMENTATIONS } from './methods';

/** Bytes a method returns, with the lifetime (its image's) that the transfer may not outlive. */
export interface PendingBody {
  readonly body: TransferBody;
  readonly owner: AbortSignal;
}

export interface MethodResult {
  readonly value: unknown;
  /** Present for methods that return bytes. */
  readonly pending?: PendingBody;
  /** Shutdown: the wire stops serving and closes the session. */
  readonly endSession?: boolean;
}

/**
 * Transfers one session may hold at once (copying, or finished but not collected). Each holds
 * a pipe and usually an open file; a client that starts transfers and never finishes them gets
 * a clear error instead of unbounded bookkeeping.
 */
export const MAX_HELD_TRANSFERS = 256;

export interface SessionOptions {
  readonly ctx: SystemContext;
  /** Reported to by every transfer; undefined when switched off. */
  readonly guard: MemoryGuard | undefined;
}

interface SessionImage {
  readonly image: OpenedImage;
  readonly lifetime: Lifetime;
}

export class Session {
  readonly ctx: SystemContext;
  private readonly lifetime = new Lifetime();
  private readonly images = new Map<number, SessionImage>();
  private readonly transfers: TransferTable;
  private readonly guard: MemoryGuard | undefined;
  private nextImageId = 0;
  private initialized = false;
  private closing: Promise<void> | undefined;

  constructor(options: SessionOptions) {
    this.ctx = options.ctx;
    this.guard = options.guard;
    this.transfers = new TransferTable(options.guard);
  }

  /** Aborts when the session closes. */
  get signal(): AbortSignal {
    return this.lifetime.signal;
  }

  /**
   * Runs one request. `signal` lets the wire cancel just this request; the session's own end
   * cancels it too. Throws a LayerpipeError (or a system error) for an error reply.
   */
  async call(method: string, args: readonly unknown[], signal?: AbortSignal): Promise<MethodResult> {
    if (!isMethodName(method)) throw new UnknownMethodError(`unknown method: ${clipInput(method)}`);
    if (this.lifetime.ended) throw new CancelledError('session closed');
    if (method !== 'Initialize' && method !== 'FinishPipe' && method !== 'Shutdown' && !this.initialized) {
      throw new NotInitializedError('client error: must invoke Initialize');
    }
    const implementation = METHOD_IMPLEMENTATIONS[method] as (s: Session, a: unknown, request: Lifetime) => Promise<MethodResult>;
    const checked = checkArguments(METHODS[method], args);
    return this.run((request) => implementation(this, checked, request), signal);
  }

  /**
   * Runs one request of any wire under a lifetime of its own: it ends when `signal` aborts
   * (the client cancelled just this request) or the session closes. The work asks the lifetime
   * for its signal only if it needs one (most methods do not: Initialize makes no AbortController).
   */
  async run<T>(work: (request: Lifetime) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.lifetime.ended) throw new CancelledError('session closed');
    const request = new Lifetime(this.lifetime);
    const onCancel = (): void => request.end(signal?.reason);
    if (signal?.aborted === true) onCancel();
    signal?.addEventListener('abort', onCancel, { once: true });
    try {
      return await work(request);
    } finally {
      signal?.removeEventListener('abort', onCancel);
      request.release();
    }
  }

  /** What ends with the session now: its open images and the requests in flight. */
  get liveChildren(): number {
    return this.lifetime.childCount;
  }

  get isInitialized(): boolean {
    return this.initialized;
  }

  /** Initialize: once per session. */
  markInitialized(): void {
    if (this.initialized) throw new InvalidArgumentError('already initialized');
    this.initialized = true;
  }

  /**
   * Opens an image by its transport name for this session and returns its id. The image lives
   * until CloseImage or the session's end; `signal` (the request's) abandons the opening only.
   * The open path (transports, policy, registry client) loads at the first image, not at start.
   */
  async openImage(name: string, signal: AbortSignal): Promise<number> {
    const lifetime = new Lifetime(this.lifetime);
    const onRequestAbort = (): void => lifetime.end(signal.reason);
    signal.addEventListener('abort', onRequestAbort, { once: true });
    try {
      const { openImageByName } = await import('../image/open');
      // The open path's code is loaded (its code cache taken): the guard's V8 flags now keep the
      // young generation from growing while configuration is read (memory-guard.ts).
      this.guard?.setStreamingFlags();
      const image = await openImageByName(name, this.ctx, lifetime.signal);
      const id = ++this.nextImageId;
      this.images.set(id, { image, lifetime });
      return id;
    } catch (err) {
      lifetime.end(err);
      throw err;
    } finally {
      signal.removeEventListener('abort', onRequestAbort);
    }
  }

  image(id: number): SessionImage {
    if (id === 0) throw new InvalidArgumentError('invalid imageid value of zero');
    const entry = this.images.get(id);
    if (entry === undefined) throw new InvalidArgumentError(`no image ${id}`);
    return entry;
  }

  /** Ends the image's transfers (their readers see the end, FinishPipe reports why), then closes its source. */
  async closeImage(id: number): Promise<void> {
    const entry = this.image(id);
    this.images.delete(id);
    entry.lifetime.end(new CancelledError(`image ${id} was closed while its data was being sent`));
    await entry.image.close();
  }

  /**
   * Starts delivering a method's bytes into the sink `openSink` makes (with whatever the wire hands
   * the client, returned as `handout`); the transfer ends early if
   * its image or the session does. Refused, with the body released, when the session already
   * holds MAX_HELD_TRANSFERS.
   */
  startTransfer<H extends { readonly sink: Sink }>(pending: PendingBody, openSink: () => H, finishable: boolean): { transfer: Transfer; handout: H } {
    if (this.transfers.heldCount >= MAX_HELD_TRANSFERS) {
      pending.body.stream.destroy();
      throw new InvalidArgumentError(`too many transfers in progress (${MAX_HELD_TRANSFERS}): finish the ones already started before starting more`);
    }
    let handout: H;
    try {
      handout = openSink();
    } catch (err) {
      pending.body.stream.destroy(); // no pipe or FIFO could be made (EMFILE, ENOSPC): release the source
      throw err;
    }
    const lifetime = new Lifetime(pending.owner);
    const transfer = this.transfers.start(pending.body, handout.sink, { lifetime, finishable });
    return { transfer, handout };
  }

  /** Waits for a finishable transfer's end and throws its error (FinishPipe, FinishTransfer). */
  finishTransfer(id: number, unknown?: (id: number) => string): Promise<void> {
    return this.transfers.finish(id, unknown);
  }

  /** Stops a finishable transfer: its source is released, its sink closed, its id forgotten (CancelTransfer). */
  cancelTransfer(id: number): Promise<void> {
    return this.transfers.cancel(id);
  }

  /** A finishable transfer still known to the session (for progress and in-band credit), or undefined. */
  findTransfer(id: number): Transfer | undefined {
    return this.transfers.get(id);
  }

  get activeTransfers(): number {
    return this.transfers.activeCount;
  }

  /** Transfers still copying or not yet collected by the client (a service drains these before it stops). */
  get heldTransfers(): number {
    return this.transfers.heldCount;
  }

  /**
   * Ends the session: every request and transfer is cancelled, every sink closed, every image's
   * source closed. Idempotent; the SystemContext's resources belong to whoever made it.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.lifetime.end(new CancelledError('session closed'));
      await this.transfers.drain();
      const images = [...this.images.values()];
      this.images.clear();
      await Promise.allSettled(images.map((entry) => entry.image.close()));
    })();
    return this.closing;
  }
}
