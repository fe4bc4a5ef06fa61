/**
 * The one errors module, shared by the server and the TypeScript client: a base class with a
 * fixed string `code` per kind, and `isTransient`, the single answer to "may trying again
 * help?" that every retry consults. How a kind travels is each wire's business: the skopeo
 * wire maps to its `error_code` in server/wires/skopeo, JSON-RPC to its own numbers there.
 */

export class LayerpipeError extends Error {
  /** Stable identifier for programs; the message is for people. */
  readonly code: string = 'LP_ERR';
  override name = 'LayerpipeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A bug or an impossible state inside layerpipe; never the client's fault. */
export class InternalError extends LayerpipeError {
  override readonly code = 'LP_ERR_INTERNAL';
  override name = 'InternalError';
}

/** A request naming a method the wire does not have. */
export class UnknownMethodError extends LayerpipeError {
  override readonly code = 'LP_ERR_UNKNOWN_METHOD';
  override name = 'UnknownMethodError';
}

/** A request that cannot be served as asked ("invalid params"): wrong argument types or counts, bad references, unknown ids. */
export class InvalidArgumentError extends LayerpipeError {
  override readonly code = 'LP_ERR_INVALID_ARGUMENT';
  override name = 'InvalidArgumentError';
}

/** A method called before the session's Initialize. */
export class NotInitializedError extends LayerpipeError {
  override readonly code = 'LP_ERR_NOT_INITIALIZED';
  override name = 'NotInitializedError';
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

/** Verification failed: content whose bytes do not hash to the digest that names it, or a wrong length. */
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

/** Work given up on purpose: its image was closed, its session ended, or the client cancelled it. */
export class CancelledError extends LayerpipeError {
  override readonly code = 'LP_ERR_CANCELLED';
  override name = 'CancelledError';
}

/** No instance of a manifest list fits the wanted platform. Not "not found": OpenImageOptional still fails. */
export class PlatformNotFoundError extends LayerpipeError {
  override readonly code = 'LP_ERR_NO_MATCHING_PLATFORM';
  override name = 'PlatformNotFoundError';
}

/** The registry refused access (401/403, denied). */
export class AccessDeniedError extends LayerpipeError {
  override readonly code = 'LP_ERR_ACCESS_DENIED';
  override name = 'AccessDeniedError';
}

/** The signature policy (containers-policy.json) does not accept the image. */
export class PolicyDeniedError extends LayerpipeError {
  override readonly code = 'LP_ERR_POLICY_DENIED';
  override name = 'PolicyDeniedError';
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

/**
 * System and undici error codes of network faults worth another try: resets, refusals,
 * timeouts, cut bodies. TLS failures and DNS "no such host" are not among them.
 */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** The string `code` of a system or library error, if it has one. */
export function systemCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/**
 * Whether trying again may succeed: a RetryableError, or a network fault (looked for along the
 * `cause` chain, as undici wraps socket errors). Typed layerpipe errors other than
 * RetryableError are final, whatever they wrap.
 */
export function isTransient(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (e instanceof RetryableError) return true;
    if (e instanceof LayerpipeError) return false;
    const code = systemCode(e);
    if (code !== undefined && TRANSIENT_CODES.has(code)) return true;
    e = typeof e === 'object' && 'cause' in e ? (e as { cause: unknown }).cause : undefined;
  }
  return false;
}

/** A one-line message for an error of any kind. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The longest piece of client input an error message repeats, so every reply stays far below the wire's 32 KiB. */
export const MAX_QUOTED_INPUT = 256;

/** Client input as an error message may repeat it: whole when short, else its beginning and its length. */
export function clipInput(text: string): string {
  return text.length <= MAX_QUOTED_INPUT ? text : `${text.slice(0, MAX_QUOTED_INPUT)}…[${text.length} characters]`;
}

/**
 * A system error in words that name no path: "ENAMETOOLONG: name too long" rather than Node's
 * message, which goes on to repeat the path (resolved against the server's own directory).
 */
export function systemErrorText(err: unknown): string {
  const code = systemCode(err);
  const message = errorMessage(err);
  if (code === undefined || !message.startsWith(code)) return message;
  const comma = message.indexOf(',');
  return comma > 0 ? message.slice(0, comma) : message;
}
