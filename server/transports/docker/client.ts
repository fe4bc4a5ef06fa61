/**
 * A client of one registry endpoint (Docker Registry HTTP API v2 / OCI distribution): ping to
 * learn the scheme and auth challenges, then manifests and blobs, with bounded retries for
 * network faults, 429 (Retry-After) and 5xx, redirects followed with Authorization kept only
 * on the registry's own origin, and 401s answered by fetching a fresh token once.
 */
import { Readable } from 'node:stream';
import {
  AccessDeniedError, CancelledError, InternalError, LayerpipeError, RetryableError, errorMessage, isTransient,
} from '../../../protocol/errors';
import type { Logger } from '../../log';
import { MAX_MANIFEST_SIZE, MediaTypes } from '../../image/manifest';
import type { ByteRange } from '../../image/range';
import type { BlobReader, ParallelRangeOptions, RawManifest } from '../../image/types';
import {
  parseChallenges, parseTokenResponse, RegistryAuthenticator, type AuthIdentity, type Challenge, type IssuedToken, type TokenCache, type TokenRequest,
} from './auth';
import { AnswerTimes } from './answer-times';
import { parallelBlob, splitsBlob, type RangeSender } from './blob-parallel-open';
import { rangeAnswer, rangeHeader, wantedRange, type RangeAnswer } from './blob-range';
import { ResumableBlobStream, type OpenedBody } from './blob-stream';
import type { HeldBytes } from './held-bytes';
import { redactUrl, type ConnectionPool, type TlsSettings } from './http';
import {
  contentLength, readLimited, responseError, simplifyContentType, statusError, withContext, type Response,
} from './responses';
import { backoffMs, Deadline, retryAfterMs, sleep } from './retry';
import { SharedOperation } from './shared';
import { request } from './undici';

/** Manifest types asked for, most wanted first; schema 1 only so that it can be refused clearly. */
export const MANIFEST_ACCEPT = [
  MediaTypes.ociManifest, MediaTypes.dockerManifest, MediaTypes.ociIndex, MediaTypes.dockerList,
  MediaTypes.dockerSchema1Signed, MediaTypes.dockerSchema1,
].join(', ');

const MAX_REDIRECTS = 10;
const MAX_TOKEN_BODY = 1024 * 1024;

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
  /** Large blobs as concurrent Range requests (blob-parallel.ts). */
  readonly parallelRanges: ParallelRangeOptions;
  readonly logger: Pick<Logger, 'debug' | 'retrying'> | undefined;
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

/** What a client shares with the other clients of its RegistryPool. */
export interface ClientResources {
  readonly connections: ConnectionPool;
  readonly tokens: TokenCache;
  readonly heldBytes: HeldBytes;
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
  /** The ping's answer carried "X-Registry-Supports-Signatures: 1" (signature-extension.ts). */
  private signatureExtension = false;
  private pinging: SharedOperation<void> | undefined;
  private readonly auth: RegistryAuthenticator;
  private readonly answerTimes = new AnswerTimes();

  constructor(
    readonly endpoint: Endpoint,
    identity: AuthIdentity,
    private readonly settings: ClientSettings,
    private readonly resources: ClientResources,
  ) {
    this.auth = new RegistryAuthenticator(identity, resources.tokens, (req, signal) => this.fetchToken(req, signal));
  }

  /**
   * GET /v2/ once: chooses https (or http when allowed and https fails) and records the
   * challenges. Concurrent callers share one ping; it is abandoned only when all of them abort.
   */
  ping(signal?: AbortSignal): Promise<void> {
    if (this.base !== undefined) return Promise.resolve();
    if (this.pinging === undefined || !this.pinging.joinable) {
      const operation: SharedOperation<void> = new SharedOperation(`pinging container registry ${this.endpoint.registry}`, (shared) =>
        this.doPing(shared).catch((err: unknown) => {
          // A failed ping is not remembered: the next request asks again.
          if (this.pinging === operation) this.pinging = undefined;
          throw err;
        }));
      this.pinging = operation;
    }
    return this.pinging.join(signal);
  }

  private async doPing(signal: AbortSignal): Promise<void> {
    const what = `pinging container registry ${this.endpoint.registry}`;
    const schemes = this.endpoint.allowHttp ? ['https', 'http'] : ['https'];
    let lastError: unknown;
    for (const scheme of schemes) {
      const url = new URL(`${scheme}://${this.endpoint.host}/v2/`);
      try {
        const challenges = await this.send(url, {
          what,
          signal,
          // When plain HTTP is the fallback, a failing HTTPS is not retried: it is the wrong door, not a busy one.
          attempts: scheme === 'https' && this.endpoint.allowHttp ? 1 : this.settings.attempts,
        }, async (res) => {
          await res.body.text().catch(() => undefined);
          this.signatureExtension = res.headers['x-registry-supports-signatures'] === '1';
          if (res.statusCode === 200) return [];
          if (res.statusCode === 401) return parseChallenges(res.headers['www-authenticate']);
          throw statusError(res.statusCode, what, '');
        });
        this.base = new URL(`${scheme}://${this.endpoint.host}`);
        this.challenges = challenges;
        this.settings.logger?.debug(`registry ${this.endpoint.registry}: ${scheme}, auth ${challenges.map((c) => c.scheme).join(', ') || 'none'}`);
        // undici's pool frees the ping's connection one loop turn later; the next request would open a second (another TLS handshake).
        await new Promise<void>((resolve) => setImmediate(resolve));
        return;
      } catch (err) {
        // Nobody waits any more: trying plain HTTP too would only be more traffic.
        if (err instanceof CancelledError) throw err;
        lastError = err;
      }
    }
    throw withContext(lastError, what);
  }

  private url(path: string): URL {
    if (this.base === undefined) throw new InternalError('registry used before ping');
    return new URL(path, this.base);
  }

  /** A manifest by tag or digest: bytes (at most 4 MiB) and the declared media type. */
  async getManifest(repository: string, selector: string, signal: AbortSignal): Promise<RawManifest> {
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

  /**
   * One page of a repository's tag list: `pathAndQuery` is "/v2/REPO/tags/list?…" (the first
   * page's, or the path and query of the previous page's Link), always sent to this registry.
   */
  async getTagListPage(repository: string, pathAndQuery: string, limit: number, signal: AbortSignal): Promise<{ body: Buffer; link: string | undefined }> {
    await this.ping(signal);
    const what = `listing tags of ${this.endpoint.registry}/${repository}`;
    return this.send(this.url(pathAndQuery), { what, signal, scope: pullScope(repository), headers: { accept: 'application/json' } }, async (res) => {
      if (res.statusCode !== 200) throw await responseError(res, what, 'manifest');
      const body = await readLimited(res, limit, `the tag list of ${this.endpoint.registry}/${repository}`);
      const link = res.headers.link;
      return { body, link: Array.isArray(link) ? link[0] : link };
    });
  }

  /** Whether the registry's /v2/ answer advertises the signature API extension. */
  async supportsSignatureExtension(signal: AbortSignal): Promise<boolean> {
    await this.ping(signal);
    return this.signatureExtension;
  }

  /**
   * GET /extensions/v2/REPO/signatures/DIGEST with the registry's auth for REPO: the body, at
   * most `limit` bytes. Any status but 200 is an error, as containers/image makes it.
   */
  async getSignatureList(repository: string, digest: string, limit: number, signal: AbortSignal): Promise<Buffer> {
    await this.ping(signal);
    const what = `downloading signatures for ${digest} in ${this.endpoint.registry}/${repository}`;
    return this.send(this.url(`/extensions/v2/${repository}/signatures/${digest}`), { what, signal, scope: pullScope(repository) }, async (res) => {
      if (res.statusCode !== 200) throw await responseError(res, what, 'other');
      return readLimited(res, limit, `the signature list of ${this.endpoint.registry}/${repository}@${digest}`);
    });
  }

  /**
   * Opens a blob (or a range of it, with Range requests; see blob-range.ts) as a stream that
   * resumes with Range requests when the connection is cut or stalls.
   */
  async getBlob(repository: string, digest: string, signal: AbortSignal, range?: ByteRange): Promise<BlobReader> {
    await this.ping(signal);
    const url = this.url(`/v2/${repository}/blobs/${digest}`);
    const what = `fetching blob ${digest} from ${this.endpoint.registry}/${repository}`;
    // An empty range still asks from its offset, so that an offset past the end is refused.
    const wanted = range === undefined ? { start: 0, last: undefined } : wantedRange(range.length === 0 ? { offset: range.offset } : range);
    const request = (delivered: number, requestSignal: AbortSignal, attempts?: number) => this.send(url, {
      what, signal: requestSignal, scope: pullScope(repository), bodyTimeoutMs: 0, attempts,
      headers: range === undefined && delivered === 0 ? {} : { range: rangeHeader(wanted, delivered) },
    }, async (res): Promise<RangeAnswer | undefined> => {
      if (range === undefined && delivered === 0) {
        if (res.statusCode !== 200) throw await responseError(res, what, 'blob');
        return { opened: { body: res.body, skip: 0 }, size: contentLength(res.headers), served: { url: res.url, headers: res.headers } };
      }
      return rangeAnswer(res, wanted, delivered, what);
    });
    const first = await request(0, signal);
    if (first === undefined || range?.length === 0) {
      first?.opened.body.destroy();
      return { stream: Readable.from([]), size: 0 };
    }
    const common = {
      what, stallTimeoutMs: this.settings.stallTimeoutMs, maxAttemptsWithoutProgress: this.settings.attempts, maxResumes: 100,
      backoffMs: (n: number) => this.retryDelay(n), signal,
      onResume: (offset: number, reason: string) => this.settings.logger?.debug(`${what}: resuming at byte ${wanted.start + offset} (${reason})`),
    };
    if (first.served !== undefined && splitsBlob(first.size, first.served.headers, this.settings.parallelRanges)) {
      // Range requests go where the registry sent the GET; its Authorization only to its own origin.
      const send: RangeSender = (target, header, withAuth, sendSignal, attempts) => this.send(target, {
        what, signal: sendSignal, bodyTimeoutMs: 0, attempts, headers: { range: header }, scope: withAuth ? pullScope(repository) : undefined,
      }, async (res) => res);
      const onFallback = (offset: number) => this.settings.logger?.debug(`${what}: ranges refused, the rest from byte ${offset} as one stream`);
      const onSplit = (offset: number, rate: number) => this.settings.logger?.debug(`${what}: one stream at ${(rate / 1e6).toFixed(1)} MB/s, the rest from byte ${offset} as Range requests`);
      const servedBy = first.served.url;
      return { stream: parallelBlob({ ...first, servedBy, fastestAnswerMs: this.answerTimes.fastestMs }, url, send, this.settings.parallelRanges, { ...common, onFallback, onSplit, held: this.resources.heldBytes }), size: first.size };
    }
    const stream = new ResumableBlobStream(first.opened, {
      ...common,
      totalSize: first.size,
      limit: wanted.last === undefined ? undefined : wanted.last + 1 - wanted.start,
      // Each reopen is one try: the stream's own loop does the retrying and the counting.
      reopen: async (delivered, reopenSignal): Promise<OpenedBody> => {
        const answer = await request(delivered, reopenSignal, 1);
        if (answer === undefined) throw new RetryableError(`${what}: the registry says the blob ends at byte ${wanted.start + delivered}, before the size it announced`);
        return answer.opened;
      },
    });
    return { stream, size: first.size };
  }

  private async fetchToken(req: TokenRequest, signal: AbortSignal): Promise<IssuedToken> {
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
      options = { what, signal, method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    } else {
      if (creds !== undefined && creds.username !== '') realm.searchParams.set('account', creds.username);
      if (req.service !== undefined && req.service !== '') realm.searchParams.set('service', req.service);
      for (const scope of req.scopes) realm.searchParams.append('scope', scope);
      const basic = creds?.kind === 'basic' && creds.username !== '' && creds.password !== ''
        ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`
        : undefined;
      options = { what, signal, authorization: async () => basic };
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
        throw withContext(err, what);
      }
    });
  }

  /**
   * Sends a request with retries, then hands the response to `consume` (which reads what it
   * needs or returns the open body). What may be tried again is isTransient's answer, for
   * network faults in sending or in `consume` and for busy statuses (429, 5xx) alike, up to the
   * attempt count; then the fault is a RetryableError. The caller's abort is a CancelledError,
   * at once and never retried; --command-timeout is a RetryableError.
   */
  private async send<T>(url: URL, opts: SendOptions, consume: (res: Response) => Promise<T>): Promise<T> {
    const attempts = Math.max(1, opts.attempts ?? this.settings.attempts);
    const deadline = new Deadline(opts.signal, this.settings.operationTimeoutMs);
    let authRetried = false;
    try {
      for (let attempt = 1; ; attempt++) {
        let waitMs: number;
        try {
          const res = await this.followRedirects(url, opts, deadline.signal);
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
          const busy = res.statusCode >= 400 ? statusError(res.statusCode, opts.what, '') : undefined;
          if (busy === undefined || !isTransient(busy) || attempt >= attempts) return await consume(res);
          waitMs = retryAfterMs(res.headers['retry-after']) ?? this.retryDelay(attempt);
          await res.body.dump().catch(() => undefined);
          this.settings.logger?.debug(`${opts.what}: status ${res.statusCode}, retrying in ${waitMs} ms`);
          this.settings.logger?.retrying?.({ what: opts.what, reason: `status ${res.statusCode}`, attempt: attempt + 1, attempts, delayMs: waitMs });
        } catch (err) {
          deadline.check(opts.what, err);
          // Typed errors were decided where they were made: a token request's RetryableError already had its retries.
          if (err instanceof LayerpipeError) throw err;
          if (!isTransient(err)) throw withContext(err, opts.what);
          if (attempt >= attempts) throw new RetryableError(`${opts.what}: ${errorMessage(err)}`, { cause: err });
          waitMs = this.retryDelay(attempt);
          this.settings.logger?.debug(`${opts.what}: ${errorMessage(err)}, retrying in ${waitMs} ms`);
          this.settings.logger?.retrying?.({ what: opts.what, reason: errorMessage(err), attempt: attempt + 1, attempts, delayMs: waitMs });
        }
        await sleep(waitMs, deadline.signal);
        deadline.check(opts.what);
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
        const authorization = opts.scope !== undefined
          ? await this.auth.authorization(this.challenges, opts.scope, signal)
          : await opts.authorization?.();
        if (authorization !== undefined) headers.authorization = authorization;
      }
      const askedAt = url.host === this.endpoint.host ? this.answerTimes.asked() : undefined; // the registry's own distance only
      const res = await request(url, {
        dispatcher: this.resources.connections.dispatcherFor(url, this.endpoint.tls),
        method,
        headers,
        body,
        signal,
        headersTimeout: this.settings.stallTimeoutMs,
        bodyTimeout: opts.bodyTimeoutMs ?? this.settings.stallTimeoutMs,
      });
      if (askedAt !== undefined) this.answerTimes.answered(askedAt);
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
    return backoffMs(attempt, this.settings.retryDelayMs, this.settings.maxRetryDelayMs);
  }
}
