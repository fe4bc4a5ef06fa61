/**
 * The one errors module: a base class with a fixed string `code`, and the mapping from any
 * error to the wire's `error_code` ("EPIPE", "retryable", "other").
 */
import type { ErrorCode } from '../protocol/methods';

export class LayerpipeError extends Error {
  /** Stable identifier for programs; the message is for people. */
  readonly code: string = 'LP_ERR';
  override name = 'LayerpipeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A request that cannot be served as asked: wrong argument types or counts, bad references. */
export class InvalidArgumentError extends LayerpipeError {
  override readonly code = 'LP_ERR_INVALID_ARGUMENT';
  override name = 'InvalidArgumentError';
}

/**
 * The image (or the tag, or the ref inside a layout/archive) does not exist.
 * OpenImageOptional answers 0 for exactly this error.
 */
export class ImageNotFoundError extends LayerpipeError {
  override readonly code = 'LP_ERR_IMAGE_NOT_FOUND';
  override name = 'ImageNotFoundError';
}

/** A blob the image source does not have. */
export class BlobNotFoundError extends LayerpipeError {
  override readonly code = 'LP_ERR_BLOB_NOT_FOUND';
  override name = 'BlobNotFoundError';
}

/** Content whose bytes do not hash to the digest that names it, or a wrong length. */
export class DigestMismatchError extends LayerpipeError {
  override readonly code = 'LP_ERR_DIGEST_MISMATCH';
  override name = 'DigestMismatchError';
}

/** A manifest type, media type, transport or option layerpipe does not handle. */
export class UnsupportedError extends LayerpipeError {
  override readonly code = 'LP_ERR_UNSUPPORTED';
  override name = 'UnsupportedError';
}

/** Input that tries to reach outside its layout, archive or directory, or is malformed. */
export class UnsafeContentError extends LayerpipeError {
  override readonly code = 'LP_ERR_UNSAFE_CONTENT';
  override name = 'UnsafeContentError';
}

/** A fault that may go away if tried again (timeouts, resets, 429, 5xx) left after retries. */
export class RetryableError extends LayerpipeError {
  override readonly code = 'LP_ERR_RETRYABLE';
  override name = 'RetryableError';
}

/** The client closed its end of a pipe before the copy finished. The text ends in "broken pipe" (ostree matches it). */
export class BrokenPipeError extends LayerpipeError {
  override readonly code = 'LP_ERR_BROKEN_PIPE';
  override name = 'BrokenPipeError';
  constructor(what: string, options?: { cause?: unknown }) {
    super(`${what}: write: broken pipe`, options);
  }
}

/** No instance of a manifest list fits the wanted platform. Not "not found": OpenImageOptional still fails. */
export class PlatformNotFoundError extends LayerpipeError {
  override readonly code = 'LP_ERR_NO_MATCHING_PLATFORM';
  override name = 'PlatformNotFoundError';
}

/** The registry or policy refused access. */
export class AccessDeniedError extends LayerpipeError {
  override readonly code = 'LP_ERR_ACCESS_DENIED';
  override name = 'AccessDeniedError';
}

/** registries.conf marks the registry (or namespace) an image name falls under as blocked. */
export class BlockedRegistryError extends LayerpipeError {
  override readonly code = 'LP_ERR_BLOCKED_REGISTRY';
  override name = 'BlockedRegistryError';
}

/** A configuration file (registries.conf, auth.json, certs.d) that cannot be read or makes no sense. */
export class InvalidConfigError extends LayerpipeError {
  override readonly code = 'LP_ERR_INVALID_CONFIG';
  override name = 'InvalidConfigError';
}

/** A docker-credential-* helper that is missing, failed, or answered nonsense. Never carries the secret. */
export class CredentialHelperError extends LayerpipeError {
  override readonly code = 'LP_ERR_CREDENTIAL_HELPER';
  override name = 'CredentialHelperError';
}

/** Node system error codes that mean "try again later". */
const TRANSIENT_SYSCALL_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EPIPE_REMOTE',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED',
]);

function systemCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** The wire's error_code for an error. */
export function wireErrorCode(err: unknown): ErrorCode {
  if (err instanceof BrokenPipeError || systemCode(err) === 'EPIPE') return 'EPIPE';
  if (err instanceof RetryableError) return 'retryable';
  if (err instanceof LayerpipeError) return 'other';
  const code = systemCode(err);
  if (code !== undefined && TRANSIENT_SYSCALL_CODES.has(code)) return 'retryable';
  return 'other';
}

/** A one-line message for an error of any kind. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
