/**
 * Protocol 1.0's one table from layerpipe's error classes (protocol/errors.ts) to JSON-RPC
 * error codes (protocol/jsonrpc.ts RpcErrorCodes). Every error object the 1.0 wire sends, in a
 * response or in `transfer/end`, is made here: `data.error_code` is the 0.2.x classification
 * (the same function the skopeo wire uses) and `data.kind` the stable LayerpipeError code.
 */
import { ResponseError } from 'vscode-jsonrpc/node';
import {
  AccessDeniedError, BrokenPipeError, CancelledError, CredentialHelperError, DigestMismatchError, errorMessage, ImageNotFoundError,
  InternalError, InvalidArgumentError, isTransient, LayerpipeError, NotInitializedError, PolicyDeniedError, UnknownMethodError,
} from '../../../protocol/errors';
import { RpcErrorCodes, type RpcError, type RpcErrorCode, type RpcErrorData } from '../../../protocol/jsonrpc';
import { skopeoErrorCode } from '../skopeo/error-code';

type ErrorClass = abstract new (...args: never[]) => LayerpipeError;

/** First match wins; an error of no class here is a ServerError (or Retryable when transient). */
const CODE_BY_CLASS: ReadonlyArray<readonly [ErrorClass, RpcErrorCode]> = [
  [UnknownMethodError, RpcErrorCodes.MethodNotFound],
  [InvalidArgumentError, RpcErrorCodes.InvalidParams],
  [NotInitializedError, RpcErrorCodes.NotInitialized],
  [ImageNotFoundError, RpcErrorCodes.ImageNotFound],
  [AccessDeniedError, RpcErrorCodes.AuthenticationFailed],
  [CredentialHelperError, RpcErrorCodes.AuthenticationFailed],
  [DigestMismatchError, RpcErrorCodes.VerificationFailed],
  [BrokenPipeError, RpcErrorCodes.BrokenPipe],
  [PolicyDeniedError, RpcErrorCodes.PolicyDenied],
  [CancelledError, RpcErrorCodes.Cancelled],
  [InternalError, RpcErrorCodes.InternalError],
];

/**
 * Longest error text sent: messages quote only short prefixes of input (clipInput), so this is
 * a backstop that keeps any error far below the message limit.
 */
const MAX_ERROR_TEXT = 4096;

function rpcCode(err: unknown): RpcErrorCode {
  for (const [cls, code] of CODE_BY_CLASS) if (err instanceof cls) return code;
  if (skopeoErrorCode(err) === 'EPIPE') return RpcErrorCodes.BrokenPipe;
  return isTransient(err) ? RpcErrorCodes.Retryable : RpcErrorCodes.ServerError;
}

function errorText(err: unknown): string {
  const text = errorMessage(err);
  return text.length <= MAX_ERROR_TEXT ? text : `${text.slice(0, MAX_ERROR_TEXT)}… (message cut at ${MAX_ERROR_TEXT} characters)`;
}

function errorData(err: unknown): RpcErrorData {
  const kind = err instanceof LayerpipeError ? err.code : undefined;
  return kind === undefined ? { error_code: skopeoErrorCode(err) } : { error_code: skopeoErrorCode(err), kind };
}

/** The error object of a failure, as `transfer/end` carries it. */
export function rpcErrorOf(err: unknown): RpcError {
  return { code: rpcCode(err), message: errorText(err), data: errorData(err) };
}

/** The same, as the exception a vscode-jsonrpc request handler throws for an error response. */
export function responseErrorOf(err: unknown): ResponseError<RpcErrorData> {
  if (err instanceof ResponseError) return err as ResponseError<RpcErrorData>;
  const { code, message, data } = rpcErrorOf(err);
  return new ResponseError<RpcErrorData>(code, message, data);
}
