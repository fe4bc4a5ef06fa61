/**
 * Errors of the TypeScript image-proxy client. They extend the project's LayerpipeError so a
 * program can tell them apart by `code`, like every other layerpipe error.
 */
import { ERROR_CODES, type ErrorCode } from '../../protocol/methods';
import { LayerpipeError } from '../../protocol/errors';

/** The proxy answered a request with `success: false`. */
export class ProxyError extends LayerpipeError {
  override readonly code = 'LP_ERR_PROXY';
  override name = 'ProxyError';
  /** The reply's `error_code`; empty when the proxy sent none (skopeo before wire 0.2.8 does not). */
  readonly errorCode: ErrorCode | '';
  /** The method whose request failed. */
  readonly method: string;

  constructor(method: string, message: string, errorCode: ErrorCode | '') {
    super(message);
    this.method = method;
    this.errorCode = errorCode;
  }

  /** The proxy says trying again may succeed (timeouts, resets, 429/5xx). */
  get retryable(): boolean {
    return this.errorCode === 'retryable';
  }
}

/** The proxy broke the wire's rules: bad JSON, a missing key, fds that do not match the method. */
export class ProxyProtocolError extends LayerpipeError {
  override readonly code = 'LP_ERR_PROXY_PROTOCOL';
  override name = 'ProxyProtocolError';
}

/** The proxy's protocol version is not one this client speaks, or lacks the method asked for. */
export class ProxyVersionError extends LayerpipeError {
  override readonly code = 'LP_ERR_PROXY_VERSION';
  override name = 'ProxyVersionError';
}

/** The proxy is gone (could not start, exited, or was closed) before the request was answered. */
export class ProxyClosedError extends LayerpipeError {
  override readonly code = 'LP_ERR_PROXY_CLOSED';
  override name = 'ProxyClosedError';
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
