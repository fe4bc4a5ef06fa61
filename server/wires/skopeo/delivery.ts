/**
 * How the skopeo wire hands bytes over: by the method's data kind, a pipe whose read end is
 * passed with the reply and whose result FinishPipe collects, or (GetRawBlob) a data pipe and
 * an error pipe that reports failure as JSON, with nothing to finish.
 */
import { errorMessage } from '../../../protocol/errors';
import { METHODS, isMethodName, type RawBlobError } from '../../../protocol/methods';
import type { PendingBody, Session } from '../../service/session';
import { openPipeSink, openRawPipeSinks } from '../../transfer/sinks/fd-pipe';
import { skopeoErrorCode } from './error-code';

export interface Delivered {
  readonly value: unknown;
  readonly pipeid: number;
  /** Read ends to pass with the reply; the socket closes them once sent. */
  readonly fds: number[];
}

/** Starts the transfer of a result's bytes (`pending`), by the method's data kind; the wire answers results without bytes itself. */
export function deliver(session: Session, method: string, value: unknown, pending: PendingBody): Delivered {
  if (!isMethodName(method)) return { value, pipeid: 0, fds: [] };
  if (METHODS[method].data === 'dataAndErrorPipes') {
    const { transfer, handout } = session.startTransfer(pending, () => openRawPipeSinks(pending.body.what), false);
    const { sink: data, errors, readFds } = handout;
    void transfer.outcome.then(async (err) => {
      data.close();
      if (err !== undefined) {
        const report: RawBlobError = { code: skopeoErrorCode(err), message: errorMessage(err) };
        await errors.writeText(JSON.stringify(report));
      }
      errors.close();
    });
    return { value, pipeid: 0, fds: readFds };
  }
  const { transfer, handout } = session.startTransfer(pending, () => openPipeSink(pending.body.what), true);
  return { value, pipeid: transfer.id, fds: [handout.readFd] };
}
