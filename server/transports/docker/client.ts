/**
 * A client of one registry endpoint (Docker Registry HTTP API v2 / OCI distribution): ping to
 * learn the scheme and auth challenges, then manifests and blobs, with bounded retries for
 * network faults, 429 (Retry-After) and 5xx, redirects followed with Authorization kept only
 * on the registry's own origin, and 401s answered by fetching a fresh token once.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { request, type Dispatcher } from 'undici';
import type { Logger } from '../../log';
import {
  AccessDeniedError, BlobNotFoundError, CancelledError, ImageNotFoundError, LayerpipeError, RetryableError, errorMessage, isTransient,
} from '../../../protocol/errors';
import { MAX_MANIFEST_SIZE, MediaTypes } from '../../image/manifest';
import type { BlobReader, RawManifest } from '../../image/types';
import { parseChallenges, parseTokenResponse, RegistryAuthenticator, type AuthIdentity, type Challenge, type IssuedToken, type TokenRequest } from './auth';
import { ResumableBlobStream, type OpenedBody } from './blob-stream';
import { dispatcherFor, redactUrl, type TlsSettings } from './http';

/** Manifest types asked for, most wanted first; schema 1 only so that it can be refused clearly. */
export const MANIFEST_ACCEPT = [
  MediaTypes.ociManifest, MediaTypes.dockerManifest, MediaTypes.ociIndex, MediaTypes.dockerList,
  MediaTypes.dockerSchema1Signed, MediaTypes.dockerSchema1,
].join(', ');

const MAX_REDIRECTS = 10;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_TOKEN_BODY = 1024 * 1024;
const MAX_RETRY_AFTER_MS = 60_000;

export interface ClientSettings {
  readonly userAgent: string;
  /** No byte (or no response) for this long: the connection is considered stalled. */
  readonly stallTimeoutMs: number;
  /** Tries per request (1 = no retry). */
  readonly attempts: number;
  /** First retry delay; doubles each time up to maxRetryDelayMs. */
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  /** Bound on each operation (a manifest, opening a blob) including retries; undefined = none. */
  readonly operationTimeoutMs: number | undefined;
  readonly logger: Pick<Logger, 'debug'> | undefined;
}

export interface Endpoint {
  /** host[:port] as the reference names it (docker.io), for messages. */
  readonly registry: string;
  /** host[:port] to connect to (registry-1.docker.io for docker.io). */
  readonly host: string;
  /** TLS for every host this client talks to (token realm, blob storage too), as containers tools do. */
  readonly tls: TlsSettings;
  /** Plain HTTP may be tried when HTTPS fails. */
  readonly allowHttp: boolean;
}

interface Response {
  readonly url: URL;
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];
}

interface SendOptions {
  readonly method?: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Authorization for the first URL's origin only (never for hosts redirected to). */
  readonly authorization?: () => Promise<string | undefined>;
  /** A pull scope: the request carries the registry's auth and a 401 refreshes it once. */
  readonly scope?: string;
  readonly signal?: AbortSignal | undefined;
  readonly attempts?: number;
  /** 0 disables undici's body timeout (blob streams watch stalls themselves). */
  readonly bodyTimeoutMs?: number;
  /** What is being done, for messages. */
  readonly what: string;
}

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export class RegistryClient {
  private base: URL | undefined;
  private challenges: Challenge[] = [];
  private pinged: Promise<void> | undefined;
  private readonly auth: RegistryAuthenticator;

  constructor(
    readonly endpoint: Endpoint,
    identity: AuthIdentity,
    private readonly settings: ClientSettings,
  ) {
    this.auth = new RegistryAuthenticator(identity, (req) => this.fetchToken(req));
  }

  /** GET /v2/ once: chooses https (or http when allowed and https fails) and records the challenges. */
  ping(signal?: AbortSignal): Promise<void> {
    this.pinged ??= this.doPing(signal).catch((err: unknown) => {
      this.pinged = undefined;
      throw err;
    });
    return this.pinged;
  }

  private async doPing(signal: AbortSignal | undefined): Promise<void> {
    const schemes = this.endpoint.allowHttp ? ['https', 'http'] : ['https'];
    let lastError: unknown;
    for (const scheme of schemes) {
      const url = new URL(`${scheme}://${this.endpoint.host}/v2/`);
      try {
        const challenges = await this.send(url, {
          what: `pinging container registry ${this.endpoint.registry}`,
          signal,
          // When plain HTTP is the fallback, a failing HTTPS is not retried: it is the wrong door, not a busy one.
          attempts: scheme === 'https' && this.endpoint.allowHttp ? 1 : this.settings.attempts,
        }, async (res) => {
          await res.body.text().catch(() => undefined);
          if (res.statusCode === 200) return [];
          if (res.statusCode === 401) return parseChallenges(res.headers['www-authenticate']);
          throw statusError(res.statusCode, `pinging container registry ${this.endpoint.registry}`, '');
        });
        this.base = new URL(`${scheme}://${this.endpoint.host}`);
        this.challenges = challenges;
        this.settings.logger?.debug(`registry ${this.endpoint.registry}: ${scheme}, auth ${challenges.map((c) => c.scheme).join(', ') || 'none'}`);
        return;
      } catch (err) {
        lastError = err;
      }
    }
    throw withContext(lastError, `pinging container registry ${this.endpoint.registry}`);
  }

  private url(path: string): URL {
    if (this.base === undefined) throw new Error('internal error: registry used before ping');
    return new URL(path, this.base);
  }

  /** A manifest by tag or digest: bytes (at most 4 MiB) and the declared media type. */
  async getManifest(repository: string, selector: string, signal?: AbortSignal): Promise<RawManifest> {
    await this.ping(signal);
    const what = `reading manifest ${selector} in ${this.endpoint.registry}/${repository}`;
    return this.send(this.url(`/v2/${repository}/manifests/${selector}`), {
      what, signal, scope: pullScope(repository), headers: { accept: MANIFEST_ACCEPT },
    }, async (res) => {
      if (res.statusCode !== 200) throw await responseError(res, what, 'manifest');
      const bytes = await readLimited(res, MAX_MANIFEST_SIZE, `manifest ${selector} in ${this.endpoint.registry}/${repository}`);
      return { bytes, mediaType: simplifyContentType(res.headers['content-type']) };
    });
  }

  /** Opens a blob as a stream that resumes with Range requests when the connection is cut or stalls. */
  async getBlob(repository: string, digest: string, signal?: AbortSignal): Promise<BlobReader> {
    await this.ping(signal);
    const url = this.url(`/v2/${repository}/blobs/${digest}`);
    const what = `fetching blob ${digest} from ${this.endpoint.registry}/${repository}`;
    const first = await this.send(url, { what, signal, scope: pullScope(repository), bodyTimeoutMs: 0 }, async (res) => {
      if (res.statusCode !== 200) throw await responseError(res, what, 'blob');
      return res;
    });
    const size = contentLength(first.headers);
    const stream = new ResumableBlobStream({ body: first.body, skip: 0 }, {
      what,
      totalSize: size,
      stallTimeoutMs: this.settings.stallTimeoutMs,
      maxAttemptsWithoutProgress: this.settings.attempts,
      maxResumes: 100,
      backoffMs: (n) => this.retryDelay(n),
      signal,
      onResume: (offset, reason) => this.settings.logger?.debug(`${what}: resuming at byte ${offset} (${reason})`),
      // Each reopen is one try: the stream's own loop does the retrying and the counting.
      reopen: (offset, reopenSignal) => this.send(url, {
        what, signal: reopenSignal, scope: pullScope(repository), bodyTimeoutMs: 0, attempts: 1, headers: { range: `bytes=${offset}-` },
      }, async (res): Promise<OpenedBody> => {
        if (res.statusCode === 206) {
          const start = rangeStart(res.headers['content-range']);
          if (start !== offset) {
            res.body.destroy();
            throw new RetryableError(`${what}: asked for bytes from ${offset}, the registry sent a range starting at ${start ?? 'an unknown offset'}`);
          }
          return { body: res.body, skip: 0 };
        }
        if (res.statusCode === 200) return { body: res.body, skip: offset };
        throw await responseError(res, what, 'blob');
      }),
    });
    return { stream, size };
  }

  private async fetchToken(req: TokenRequest): Promise<IssuedToken> {
    const realm = new URL(req.realm);
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new LayerpipeError(`unsupported token realm ${redactUrl(realm)}`);
    const creds = req.credentials;
    const what = `requesting bearer token from ${realm.host}`;
    let options: SendOptions;
    if (creds?.kind === 'identityToken') {
      // OAuth2 refresh-token grant, as `docker login` identity tokens need.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.token, client_id: 'layerpipe' });
      if (req.service !== undefined && req.service !== '') form.set('service', req.service);
      for (const scope of req.scopes) form.append('scope', scope);
      options = { what, method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    } else {
      if (creds !== undefined && creds.username !== '') realm.searchParams.set('account', creds.username);
      if (req.service !== undefined && req.service !== '') realm.searchParams.set('service', req.service);
      for (const scope of req.scopes) realm.searchParams.append('scope', scope);
      const basic = creds?.kind === 'basic' && creds.username !== '' && creds.password !== ''
        ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`
        : undefined;
      options = { what, authorization: async () => basic };
    }
    return this.send(realm, options, async (res) => {
      if (res.statusCode === 401 || res.statusCode === 403) {
        const err = await responseError(res, what, 'token');
        throw new AccessDeniedError(`unable to retrieve auth token: invalid username/password: ${err.message}`);
      }
      if (res.statusCode !== 200) throw await responseError(res, what, 'token');
      const body = await readLimited(res, MAX_TOKEN_BODY, 'token response');
      try {
        return parseTokenResponse(body.toString('utf8'));
      } catch (err) {
        throw new LayerpipeError(`${what}: ${errorMessage(err)}`);
      }
    });
  }

  /**
   * Sends a request with retries, then hands the response to `consume` (which reads what it
   * needs or returns the open body). Network faults in sending or in `consume` are retried,
   * 429 and 5xx too, up to the attempt count; then they become RetryableError.
   */
  private async send<T>(url: URL, opts: SendOptions, consume: (res: Response) => Promise<T>): Promise<T> {
    const attempts = Math.max(1, opts.attempts ?? this.settings.attempts);
    const deadline = new Deadline(opts.signal, this.settings.operationTimeoutMs);
    let authRetried = false;
    try {
      for (let attempt = 1; ; attempt++) {
        let res: Response;
        try {
          res = await this.followRedirects(url, opts, deadline.signal);
          if (res.statusCode === 401 && opts.scope !== undefined && !authRetried && res.url.origin === url.origin) {
            // A token that expired or lacks scope, or a registry that wants auth only here: learn the challenge anew, once.
            authRetried = true;
            const fresh = parseChallenges(res.headers['www-authenticate']);
            this.auth.forget(this.challenges, opts.scope);
            if (fresh.length > 0) this.challenges = fresh;
            await res.body.dump().catch(() => undefined);
            attempt--;
            continue;
          }
          if (isRetryableStatus(res.statusCode) && attempt < attempts) {
            const delay = retryAfterMs(res.headers['retry-after']) ?? this.retryDelay(attempt);
            await res.body.dump().catch(() => undefined);
            this.settings.logger?.debug(`${opts.what}: status ${res.statusCode}, retrying in ${delay} ms`);
            await sleep(delay, deadline.signal);
            continue;
          }
          return await consume(res);
        } catch (err) {
          deadline.check(opts.what);
          // Typed errors are final here: a RetryableError from a token request already had its retries.
          if (err instanceof LayerpipeError) throw err;
          if (isTransient(err) && attempt < attempts) {
            const delay = this.retryDelay(attempt);
            this.settings.logger?.debug(`${opts.what}: ${errorMessage(err)}, retrying in ${delay} ms`);
            await sleep(delay, deadline.signal);
            deadline.check(opts.what);
            continue;
          }
          if (isTransient(err)) throw new RetryableError(`${opts.what}: ${errorMessage(err)}`, { cause: err });
          throw err;
        }
      }
    } finally {
      deadline.release();
    }
  }

  private async followRedirects(start: URL, opts: SendOptions, signal: AbortSignal): Promise<Response> {
    let url = start;
    let method = opts.method ?? 'GET';
    let body = opts.body;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { 'user-agent': this.settings.userAgent, ...opts.headers };
      if (url.origin === start.origin) {
        const authorization = opts.scope !== undefined ? await this.auth.authorization(this.challenges, opts.scope) : await opts.authorization?.();
        if (authorization !== undefined) headers.authorization = authorization;
      }
      const res = await request(url, {
        dispatcher: dispatcherFor(url, this.endpoint.tls),
        method,
        headers,
        body,
        signal,
        headersTimeout: this.settings.stallTimeoutMs,
        bodyTimeout: opts.bodyTimeoutMs ?? this.settings.stallTimeoutMs,
      });
      this.settings.logger?.debug(`${method} ${redactUrl(url)} -> ${res.statusCode}`);
      const location = res.headers.location;
      if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304 && typeof location === 'string') {
        await res.body.dump().catch(() => undefined);
        if (hops >= MAX_REDIRECTS) throw new LayerpipeError(`${opts.what}: more than ${MAX_REDIRECTS} redirects`);
        url = new URL(location, url);
        // 307 and 308 repeat the request as it was; the others turn it into a plain GET.
        if (res.statusCode !== 307 && res.statusCode !== 308) {
          method = 'GET';
          body = undefined;
        }
        if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new LayerpipeError(`${opts.what}: redirect to unsupported URL ${redactUrl(url)}`);
        continue;
      }
      return { url, statusCode: res.statusCode, headers: res.headers, body: res.body };
    }
  }

  private retryDelay(attempt: number): number {
    return Math.min(this.settings.retryDelayMs * 2 ** Math.max(0, attempt - 1), this.settings.maxRetryDelayMs);
  }
}

/** A signal that fires when the caller aborts or the operation's time is up. */
class Deadline {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private readonly onOuterAbort = (): void => this.controller.abort(this.outer?.reason);

  constructor(private readonly outer: AbortSignal | undefined, private readonly timeoutMs: number | undefined) {
    this.signal = this.controller.signal;
    if (outer?.aborted) this.controller.abort(outer.reason);
    outer?.addEventListener('abort', this.onOuterAbort, { once: true });
    if (timeoutMs !== undefined && timeoutMs > 0) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.controller.abort(new Error('timeout'));
      }, timeoutMs);
    }
  }

  /** Throws the right error when the signal fired: a timeout is retryable, a caller abort is not. */
  check(what: string): void {
    if (this.timedOut) throw new RetryableError(`${what}: timed out after ${this.timeoutMs} ms (--command-timeout)`);
    if (this.signal.aborted) throw new CancelledError(`${what}: cancelled`);
  }

  /** Stops the clock; a blob body keeps following the caller's abort. */
  release(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 || (status >= 500 && status !== 501 && status !== 505);
}

/** Retry-After as seconds or an HTTP date, capped; undefined when absent or unusable. */
export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  let ms: number;
  if (/^\d+$/.test(text.trim())) ms = Number(text.trim()) * 1000;
  else {
    const when = Date.parse(text);
    if (Number.isNaN(when)) return undefined;
    ms = when - Date.now();
    if (ms <= 0) return undefined;
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

function contentLength(headers: IncomingHttpHeaders): number {
  const value = headers['content-length'];
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : -1;
}

function rangeStart(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  const m = text === undefined ? null : /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(text.trim());
  return m === null ? undefined : Number(m[1]);
}

function simplifyContentType(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined ? '' : text.split(';')[0]!.trim().toLowerCase();
}

/** Waits `ms`, or less when `signal` aborts (resolving either way). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}

/** Reads a body, refusing more than `limit` bytes (announced or actual). */
async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
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

const NOT_FOUND_CODES = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN', 'NOT_FOUND', 'TAG_UNKNOWN']);
const DENIED_CODES = new Set(['UNAUTHORIZED', 'DENIED']);

/** A typed error for a failed response: not found, denied, retryable, or other. */
async function responseError(res: Response, context: string, kind: 'manifest' | 'blob' | 'token'): Promise<Error> {
  let text = '';
  try {
    text = (await readLimited(res, MAX_ERROR_BODY, 'error body')).toString('utf8');
  } catch {
    res.body.destroy();
  }
  const registryError = registryErrorOf(text);
  const detail = registryError === undefined ? '' : describeRegistryError(registryError);
  const notFound = res.statusCode === 404 || (registryError !== undefined &&
    (NOT_FOUND_CODES.has(registryError.code) || (registryError.code === 'UNKNOWN' && /not found/i.test(registryError.message))));
  if (notFound && kind === 'manifest') return new ImageNotFoundError(`${context}: ${detail || 'manifest unknown'}`);
  if (notFound && kind === 'blob') return new BlobNotFoundError(`${context}: ${detail || 'blob unknown'}`);
  if (res.statusCode === 401 || res.statusCode === 403 || (registryError !== undefined && DENIED_CODES.has(registryError.code))) {
    return new AccessDeniedError(`${context}: ${detail || 'access denied'} (status ${res.statusCode})`);
  }
  return statusError(res.statusCode, context, detail);
}

function statusError(status: number, context: string, detail: string): Error {
  const message = `${context}: invalid status code from registry ${status}${detail === '' ? '' : ` (${detail})`}`;
  return isRetryableStatus(status) ? new RetryableError(message) : new LayerpipeError(message);
}

/** "manifest unknown" rather than "MANIFEST_UNKNOWN: manifest unknown". */
function describeRegistryError(e: { code: string; message: string }): string {
  const words = e.code.toLowerCase().replace(/_/g, ' ');
  if (e.message === '' || e.message.toLowerCase() === words) return words;
  return `${words}: ${e.message}`;
}

/** Keeps the class of a typed error and puts context in front of its message. */
function withContext(err: unknown, context: string): Error {
  if (err instanceof LayerpipeError) {
    if (err.message.startsWith(context)) return err;
    const Ctor = err.constructor as new (message: string, options?: { cause?: unknown }) => LayerpipeError;
    return new Ctor(`${context}: ${err.message}`, { cause: err });
  }
  const message = `${context}: ${errorMessage(err)}`;
  return isTransient(err) ? new RetryableError(message, { cause: err }) : new LayerpipeError(message, { cause: err });
}
