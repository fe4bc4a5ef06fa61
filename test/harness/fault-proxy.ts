/**
 * A scriptable HTTP proxy that stands in for a registry: the client is pointed at the proxy's
 * port as if it were the registry, and each request is forwarded to the real one unless a rule
 * says otherwise. Rules cut a response after N body bytes, stall it, answer a status (429 with
 * Retry-After, 503…) without forwarding, or replace body bytes. Every request is recorded with
 * its Range header, status and bytes sent, so tests can assert that a transfer was resumed.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export type FaultAction =
  /** Forward, send the headers and the first `afterBytes` body bytes, then drop the connection. */
  | { readonly kind: 'cut'; readonly afterBytes: number }
  /** Forward, send `afterBytes` body bytes, then send nothing more (for `forMs`, or until the client leaves). */
  | { readonly kind: 'stall'; readonly afterBytes: number; readonly forMs?: number }
  /** Answer this status without asking the registry. */
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Readonly<Record<string, string>>; readonly body?: string }
  /** Forward, but replace the body bytes at `offset` (with `bytes`, or their bitwise complement). */
  | { readonly kind: 'corrupt'; readonly offset: number; readonly bytes?: Buffer }
  /** Wait before forwarding. */
  | { readonly kind: 'delay'; readonly ms: number }
  /** Forward without the Range header, as a registry or storage backend that ignores ranges answers (200, the whole blob). */
  | { readonly kind: 'ignore-range' }
  /** Forward, adding these headers to the response (a registry feature the real one lacks, such as an extension). */
  | { readonly kind: 'add-headers'; readonly headers: Readonly<Record<string, string>> }
  /** Answer with `handler` instead of the registry (an endpoint the real one does not have). */
  | { readonly kind: 'serve'; readonly handler: (req: http.IncomingMessage, res: http.ServerResponse) => void };

export interface SeenRequest {
  readonly index: number;
  /** Date.now() when the request arrived. */
  readonly at: number;
  readonly method: string;
  readonly path: string;
  /** The Range header the client sent, if any. */
  readonly range: string | undefined;
  readonly headers: http.IncomingHttpHeaders;
  /** Status sent to the client (0 until headers are sent). */
  status: number;
  /** Body bytes sent to the client. */
  bodyBytes: number;
  /** The fault applied, if any. */
  fault: FaultAction['kind'] | undefined;
  /** The response body was sent in full. */
  completed: boolean;
  /** Which client connection carried it (numbered from 1 in accept order). */
  readonly connection: number;
  /** Date.now() when that connection closed (the client gave up, or closed its pool); undefined while open. */
  connectionClosedAt: number | undefined;
}

export type RequestMatcher = (req: { readonly method: string; readonly path: string; readonly headers: http.IncomingHttpHeaders }) => boolean;

export interface FaultRule {
  readonly match: RequestMatcher;
  readonly action: FaultAction;
  /** How many matching requests get the fault (default 1; Infinity for all). */
  readonly times?: number;
  /** Matching requests let through untouched before the fault starts (default 0). */
  readonly skip?: number;
}

const BLOB_PATH = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/;
const MANIFEST_PATH = /^\/v2\/(.+)\/manifests\/([^/]+)$/;

/** Ready-made matchers. */
export const match = {
  any: (): RequestMatcher => () => true,
  /** GET of a blob (any, or the one with this digest). */
  blobGet: (digest?: string): RequestMatcher => (r) => {
    const m = BLOB_PATH.exec(r.path.split('?')[0]);
    return r.method === 'GET' && m !== null && (digest === undefined || m[2] === digest);
  },
  /** GET or HEAD of a manifest. */
  manifest: (): RequestMatcher => (r) => (r.method === 'GET' || r.method === 'HEAD') && MANIFEST_PATH.test(r.path.split('?')[0]),
  path: (re: RegExp): RequestMatcher => (r) => re.test(r.path),
};

export interface FaultProxyTarget {
  readonly host: string;
  readonly port: number;
  /** The registry speaks TLS (the proxy itself always listens on plain HTTP). */
  readonly tls?: { readonly ca: Buffer };
}

export interface FaultProxy {
  /** 127.0.0.1:PORT: use it where the registry's host:port would go. */
  readonly host: string;
  readonly port: number;
  readonly requests: SeenRequest[];
  addRule(rule: FaultRule): void;
  clearRules(): void;
  /** Rules that still have faults to give. */
  pendingRules(): number;
  /** Requests matching a matcher, in arrival order. */
  seen(matcher: RequestMatcher): SeenRequest[];
  close(): Promise<void>;
}

interface ActiveRule {
  readonly rule: FaultRule;
  skipLeft: number;
  timesLeft: number;
}

export async function startFaultProxy(target: FaultProxyTarget): Promise<FaultProxy> {
  const requests: SeenRequest[] = [];
  let rules: ActiveRule[] = [];
  const sockets = new Set<Socket>();
  const connectionIds = new WeakMap<Socket, number>();
  let connections = 0;
  const timers = new Set<NodeJS.Timeout>();

  const pickFault = (req: { method: string; path: string; headers: http.IncomingHttpHeaders }): FaultAction | undefined => {
    for (const active of rules) {
      if (active.timesLeft <= 0 || !active.rule.match(req)) continue;
      if (active.skipLeft > 0) {
        active.skipLeft--;
        continue;
      }
      active.timesLeft--;
      return active.rule.action;
    }
    return undefined;
  };

  const server = http.createServer((req, res) => {
    const seen: SeenRequest = {
      index: requests.length,
      at: Date.now(),
      method: req.method ?? '',
      path: req.url ?? '/',
      range: typeof req.headers.range === 'string' ? req.headers.range : undefined,
      headers: req.headers,
      status: 0,
      bodyBytes: 0,
      fault: undefined,
      completed: false,
      connection: connectionIds.get(req.socket) ?? 0,
      connectionClosedAt: undefined,
    };
    requests.push(seen);
    const fault = pickFault(seen);
    seen.fault = fault?.kind;
    if (fault?.kind === 'status') {
      req.resume();
      seen.status = fault.status;
      const body = fault.body ?? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `fault proxy answered ${fault.status}` }] });
      res.writeHead(fault.status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), ...fault.headers });
      res.end(body, () => {
        seen.completed = true;
      });
      return;
    }
    if (fault?.kind === 'serve') {
      res.on('finish', () => {
        seen.status = res.statusCode;
        seen.completed = true;
      });
      fault.handler(req, res);
      return;
    }
    const forward = (): void => forwardRequest(target, req, res, seen, fault, timers);
    if (fault?.kind === 'delay') {
      const timer = setTimeout(() => {
        timers.delete(timer);
        forward();
      }, fault.ms);
      timers.add(timer);
    } else {
      forward();
    }
  });
  server.on('connection', (socket) => {
    const id = ++connections;
    connectionIds.set(socket, id);
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      const now = Date.now();
      for (const r of requests) if (r.connection === id) r.connectionClosedAt = now;
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    requests,
    addRule: (rule) => {
      rules.push({ rule, skipLeft: rule.skip ?? 0, timesLeft: rule.times ?? 1 });
    },
    clearRules: () => {
      rules = [];
    },
    pendingRules: () => rules.filter((r) => r.timesLeft > 0).length,
    seen: (matcher) => requests.filter((r) => matcher(r)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Headers that describe one hop, not the message; Node sets its own. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function forwardRequest(
  target: FaultProxyTarget,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  seen: SeenRequest,
  fault: FaultAction | undefined,
  timers: Set<NodeJS.Timeout>,
): void {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP_HEADERS.has(name) && value !== undefined) headers[name] = value;
  if (fault?.kind === 'ignore-range') delete headers.range;
  // Host stays the client's (the proxy's address): the registry builds Location URLs from it,
  // so uploads and redirects come back through the proxy too.
  const options: https.RequestOptions = { host: target.host, port: target.port, method: req.method, path: req.url, headers, agent: false };
  const upstreamReq = target.tls !== undefined ? https.request({ ...options, ca: target.tls.ca, servername: 'localhost' }) : http.request(options);
  upstreamReq.on('error', (err) => {
    if (!res.headersSent) {
      seen.status = 502;
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`fault proxy: registry unreachable: ${err.message}`);
    } else {
      res.destroy();
    }
  });
  req.on('aborted', () => upstreamReq.destroy());
  res.on('close', () => upstreamReq.destroy());
  req.pipe(upstreamReq);
  upstreamReq.on('response', (upstream) => {
    const outHeaders: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(upstream.headers)) if (!HOP_HEADERS.has(name) && value !== undefined) outHeaders[name] = value;
    if (fault?.kind === 'add-headers') Object.assign(outHeaders, fault.headers);
    seen.status = upstream.statusCode ?? 502;
    res.writeHead(seen.status, outHeaders);
    const limit = fault?.kind === 'cut' || fault?.kind === 'stall' ? fault.afterBytes : Infinity;
    let position = 0;
    let halted = false;
    /** The registry's body ended while the response was held back by a stall. */
    let endedWhileHalted = false;
    const endResponse = (): void => {
      res.end(() => {
        seen.completed = true;
      });
    };
    /** Stops the body at the limit; `tail` is the rest of the chunk that crossed it. */
    const halt = (tail: Buffer): void => {
      halted = true;
      if (fault?.kind === 'cut') {
        upstream.destroy();
        res.socket?.destroy();
      } else if (fault?.kind === 'stall' && fault.forMs !== undefined) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          halted = false;
          seen.bodyBytes += tail.length;
          res.write(tail);
          if (endedWhileHalted) endResponse();
          else upstream.resume();
        }, fault.forMs);
        timers.add(timer);
      }
      // A stall without forMs holds until the client gives up and closes (res 'close').
    };
    upstream.on('data', (chunk: Buffer) => {
      if (halted && fault?.kind === 'cut') return;
      let data = chunk;
      if (fault?.kind === 'corrupt') data = corruptChunk(chunk, position, fault.offset, fault.bytes);
      if (position < limit && position + data.length >= limit) {
        const head = data.subarray(0, limit - position);
        const tail = data.subarray(limit - position);
        position += data.length;
        seen.bodyBytes += head.length;
        upstream.pause();
        halted = true;
        // Only drop or hold the connection once the head is in the kernel, or it would be lost.
        res.write(head, () => halt(tail));
        return;
      }
      position += data.length;
      seen.bodyBytes += data.length;
      if (!res.write(data)) {
        upstream.pause();
        res.once('drain', () => {
          if (!halted) upstream.resume();
        });
      }
    });
    if (limit === 0) {
      upstream.pause();
      halted = true;
      res.write(Buffer.alloc(0), () => halt(Buffer.alloc(0)));
    }
    upstream.on('end', () => {
      if (halted && fault?.kind === 'cut') return;
      if (halted) endedWhileHalted = true;
      else endResponse();
    });
    upstream.on('error', () => res.destroy());
  });
}

/** A copy of the chunk with the bytes at [offset, offset+len) of the whole body replaced. */
function corruptChunk(chunk: Buffer, chunkStart: number, offset: number, bytes: Buffer | undefined): Buffer {
  const replacement = bytes ?? Buffer.from([0]);
  const end = offset + replacement.length;
  if (end <= chunkStart || offset >= chunkStart + chunk.length) return chunk;
  const out = Buffer.from(chunk);
  for (let i = Math.max(offset, chunkStart); i < Math.min(end, chunkStart + chunk.length); i++) {
    out[i - chunkStart] = bytes !== undefined ? replacement[i - offset] : ~chunk[i - chunkStart] & 0xff;
  }
  return out;
}
