/**
 * Reading registry responses: bounded bodies, a few headers, and the typed error a failed
 * response stands for (not found, denied, retryable, or other), with the registry's own
 * {"errors":[…]} text in the message.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import {
  AccessDeniedError, BlobNotFoundError, ImageNotFoundError, LayerpipeError, RetryableError, errorMessage, isTransient,
} from '../../../protocol/errors';

/** A response after redirects: the URL it came from, status, headers, and the body not yet read. */
export interface Response {
  readonly url: URL;
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];
}

const MAX_ERROR_BODY = 64 * 1024;
const NOT_FOUND_CODES: readonly string[] = ['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN', 'NOT_FOUND', 'TAG_UNKNOWN'];
const DENIED_CODES: readonly string[] = ['UNAUTHORIZED', 'DENIED'];

/** Statuses that say "busy or broken for now": 429, 408 and 5xx but Not Implemented and HTTP Version Not Supported. */
function isBusyStatus(status: number): boolean {
  return status === 429 || status === 408 || (status >= 500 && status !== 501 && status !== 505);
}

export function contentLength(headers: IncomingHttpHeaders): number {
  const value = headers['content-length'];
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : -1;
}

/** "application/json; charset=utf-8" -> "application/json". */
export function simplifyContentType(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined ? '' : text.split(';')[0]!.trim().toLowerCase();
}

/** Reads a body, refusing more than `limit` bytes (announced or actual). */
export async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const announced = contentLength(res.headers);
  if (announced > limit) {
    res.body.destroy();
    throw new LayerpipeError(`${what} is ${announced} bytes, more than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.body.destroy();
      throw new LayerpipeError(`${what} is more than the ${limit} bytes allowed`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** The first entry of a registry's JSON error body: {"errors":[{"code","message"}]}. */
function registryErrorOf(text: string): { code: string; message: string } | undefined {
  try {
    const parsed = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(parsed.errors) || parsed.errors.length === 0) return undefined;
    const first = parsed.errors[0] as { code?: unknown; message?: unknown };
    return { code: typeof first.code === 'string' ? first.code : 'UNKNOWN', message: typeof first.message === 'string' ? first.message : '' };
  } catch {
    return undefined;
  }
}

/** "manifest unknown" rather than "MANIFEST_UNKNOWN: manifest unknown". */
function describeRegistryError(e: { code: string; message: string }): string {
  const words = e.code.toLowerCase().replace(/_/g, ' ');
  if (e.message === '' || e.message.toLowerCase() === words) return words;
  return `${words}: ${e.message}`;
}

/** A typed error for a failed response: not found, denied, retryable, or other. Reads (and so frees) the body. */
export async function responseError(res: Response, context: string, kind: 'manifest' | 'blob' | 'token' | 'other'): Promise<LayerpipeError> {
  let text = '';
  try {
    text = (await readLimited(res, MAX_ERROR_BODY, 'error body')).toString('utf8');
  } catch {
    res.body.destroy();
  }
  const registryError = registryErrorOf(text);
  const detail = registryError === undefined ? '' : describeRegistryError(registryError);
  const notFound = res.statusCode === 404 || (registryError !== undefined &&
    (NOT_FOUND_CODES.includes(registryError.code) || (registryError.code === 'UNKNOWN' && /not found/i.test(registryError.message))));
  if (notFound && kind === 'manifest') return new ImageNotFoundError(`${context}: ${detail || 'manifest unknown'}`);
  if (notFound && kind === 'blob') return new BlobNotFoundError(`${context}: ${detail || 'blob unknown'}`);
  if (res.statusCode === 401 || res.statusCode === 403 || (registryError !== undefined && DENIED_CODES.includes(registryError.code))) {
    return new AccessDeniedError(`${context}: ${detail || 'access denied'} (status ${res.statusCode})`);
  }
  return statusError(res.statusCode, context, detail);
}

/** The error a status stands for when nothing more is known: retryable for busy statuses. */
export function statusError(status: number, context: string, detail: string): LayerpipeError {
  const message = `${context}: invalid status code from registry ${status}${detail === '' ? '' : ` (${detail})`}`;
  return isBusyStatus(status) ? new RetryableError(message) : new LayerpipeError(message);
}

/** Keeps the class of a typed error and puts context in front of its message; others become typed. */
export function withContext(err: unknown, context: string): LayerpipeError {
  if (err instanceof LayerpipeError) {
    if (err.message.startsWith(context)) return err;
    const Ctor = err.constructor as new (message: string, options?: { cause?: unknown }) => LayerpipeError;
    return new Ctor(`${context}: ${err.message}`, { cause: err });
  }
  const message = `${context}: ${networkErrorText(err)}`;
  return isTransient(err) ? new RetryableError(message, { cause: err }) : new LayerpipeError(message, { cause: err });
}

/**
 * A network error in words a person can act on. The one OpenSSL reports as "wrong version
 * number" means the TLS handshake got a plain-HTTP answer: the registry speaks HTTP.
 */
export function networkErrorText(err: unknown): string {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/.test(e.message)) {
      return 'the registry answered the TLS handshake in plain HTTP (OpenSSL: wrong version number): it speaks HTTP, not HTTPS. '
        + 'To reach it over plain HTTP, pass --tls-verify=false, or mark it insecure in registries.conf';
    }
    e = e.cause;
  }
  return errorMessage(err);
}
