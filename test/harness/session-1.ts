/**
 * Protocol 1.0's methods in process, with no wire: a real Session (initialized), each method
 * called through Session.run as a wire would, and a transfer's bytes collected from a sink
 * that reads everything, with the transfer's outcome (a verification error, for GetBlob).
 */
import { PassThrough } from 'node:stream';
import type { ParamsOf1 } from '../../protocol/jsonrpc';
import type { SystemContext } from '../../server/image/types';
import { METHOD_IMPLEMENTATIONS_1, type ServiceMethod1, type Value1 } from '../../server/service/methods-1';
import { Session, type PendingBody } from '../../server/service/session';
import type { Lifetime } from '../../server/service/lifetime';
import type { Sink } from '../../server/transfer/sink';
import { testContext } from './context';

export function session1(ctx: SystemContext = testContext()): Session {
  const session = new Session({ ctx, guard: undefined });
  session.markInitialized();
  return session;
}

/** Calls a 1.0 method as a wire does; `signal` cancels just this request. */
export function call1<M extends ServiceMethod1>(session: Session, method: M, params: ParamsOf1<M>, signal?: AbortSignal): Promise<Value1<M>> {
  const implementation = METHOD_IMPLEMENTATIONS_1[method] as (s: Session, p: ParamsOf1<M>, request: Lifetime) => Promise<Value1<M>>;
  return session.run((request) => implementation(session, params, request), signal);
}

/** A sink that keeps every byte written to it. */
class CollectingSink implements Sink {
  readonly writable = new PassThrough();
  readonly chunks: Buffer[] = [];
  constructor() {
    this.writable.on('data', (c: Buffer) => this.chunks.push(c));
  }
  describeFailure(err: Error): Error {
    return err;
  }
  close(): void {
    this.writable.end();
  }
}

export interface Delivered {
  readonly bytes: Buffer;
  /** The transfer's error (FinishTransfer's), undefined when it ended well. */
  readonly error: Error | undefined;
}

/** Runs a pending body (a 1.0 PendingTransfer's, or a 0.2.x method's) to its end into memory. */
export async function deliver(session: Session, pending: PendingBody): Promise<Delivered> {
  const sink = new CollectingSink();
  const { transfer } = session.startTransfer(pending, () => ({ sink }), true);
  const error = await session.finishTransfer(transfer.id).then(() => undefined, (err: unknown) => err as Error);
  return { bytes: Buffer.concat(sink.chunks), error };
}

/** Decodes a base64 `data` member. */
export const decoded = (data: string): Buffer => Buffer.from(data, 'base64');
