/** The skopeo wire's `error_code` for an error: "EPIPE", "retryable" or "other". */
import type { ErrorCode } from '../../../protocol/methods';
import { BrokenPipeError, isTransient, systemCode } from '../../../protocol/errors';

export function skopeoErrorCode(err: unknown): ErrorCode {
  if (err instanceof BrokenPipeError || systemCode(err) === 'EPIPE') return 'EPIPE';
  return isTransient(err) ? 'retryable' : 'other';
}
