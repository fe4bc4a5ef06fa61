/**
 * A bare HTTP(S) request (GET unless told) for tests that talk to a test registry, its token server or the fault
 * proxy directly: it returns whatever arrived, including a body cut short, instead of throwing.
 */
import http from 'node:http';
import https from 'node:https';

export interface GetOptions {
  readonly headers?: Readonly<Record<string, string>>;
  /** CA for https URLs. */
  readonly ca?: Buffer;
  /** Give up (and close) when no byte arrives for this long. */
  readonly idleTimeoutMs?: number;
  /** Default GET. */
  readonly method?: string;
  readonly body?: string;
}

export interface GetResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** Why the body ended early: 'aborted' (connection lost), 'timeout', or an error message. */
  readonly failure: string | undefined;
  /** Milliseconds from the request to each received chunk (for stall checks). */
  readonly chunkTimes: readonly { readonly at: number; readonly bytes: number }[];
}

export function httpGet(url: string, opts: GetOptions = {}): Promise<GetResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    const chunkTimes: { at: number; bytes: number }[] = [];
    let status = 0;
    let headers: http.IncomingHttpHeaders = {};
    let settled = false;
    const finish = (failure: string | undefined): void => {
      if (settled) return;
      settled = true;
      resolve({ status, headers, body: Buffer.concat(chunks), failure, chunkTimes });
    };
    const onResponse = (res: http.IncomingMessage): void => {
      status = res.statusCode ?? 0;
      headers = res.headers;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        chunkTimes.push({ at: Date.now() - started, bytes: chunk.length });
      });
      res.on('end', () => finish(res.complete ? undefined : 'aborted'));
      res.on('aborted', () => finish('aborted'));
      res.on('error', (err) => finish(err.message === 'aborted' ? 'aborted' : err.message));
      res.on('close', () => finish(res.complete ? undefined : 'aborted'));
    };
    const options = { method: opts.method ?? 'GET', headers: { ...opts.headers }, agent: false as const };
    const req = url.startsWith('https:') ? https.request(url, { ...options, ca: opts.ca }, onResponse) : http.request(url, options, onResponse);
    req.on('error', (err) => finish(err.message));
    req.end(opts.body);
    if (opts.idleTimeoutMs !== undefined) {
      req.setTimeout(opts.idleTimeoutMs, () => {
        finish('timeout');
        req.destroy();
      });
    }
  });
}

export const OCI_MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export function basicAuthHeader(creds: string): string {
  return `Basic ${Buffer.from(creds).toString('base64')}`;
}
