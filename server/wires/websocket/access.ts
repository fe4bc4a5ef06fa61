/**
 * Who may open a WebSocket: checked on the HTTP upgrade request, before anything is opened. A
 * bearer token is required, as `Authorization: Bearer TOKEN` or (browsers cannot set headers) as
 * a `bearer.TOKEN` entry of Sec-WebSocket-Protocol; never in the URL. A request with an Origin
 * (a browser page) must come from an allowed origin; non-browser clients send none.
 * The token is never logged nor echoed: the server selects only `layerpipe.1`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { InvalidConfigError } from '../../../protocol/errors';
import { WS_TOKEN_PROTOCOL_PREFIX } from '../../../protocol/websocket';

export type Refusal = { readonly status: 401 | 403; readonly reason: string };

/** Characters a token may have: it travels in a header and as a subprotocol name (an HTTP token). */
const TOKEN_SYNTAX = /^[A-Za-z0-9._~-]{16,512}$/;

function digestOf(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** The secret a client must present, kept only as its digest (compared in constant time). */
export class BearerToken {
  private readonly digest: Buffer;

  constructor(token: string) {
    if (!TOKEN_SYNTAX.test(token)) {
      throw new InvalidConfigError('the WebSocket token must be 16 to 512 characters of A-Z a-z 0-9 . _ ~ -');
    }
    this.digest = digestOf(token);
  }

  matches(candidate: string): boolean {
    return timingSafeEqual(digestOf(candidate), this.digest);
  }
}

/** The token file given by --token-file (its first line), or a new token written to a 0600 file in a private directory. */
export interface TokenSource {
  readonly token: BearerToken;
  /** Where the token is (printed at start, so a user can hand it to a page). */
  readonly path: string;
  /** Removes a generated token file (a given one is left alone). */
  dispose(): void;
}

export function readTokenFile(file: string): TokenSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidConfigError(`--token-file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return { token: new BearerToken(text.split('\n')[0]!.trim()), path: path.resolve(file), dispose: () => undefined };
}

export function generateTokenFile(): TokenSource {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-ws-'));
  chmodSync(dir, 0o700);
  const file = path.join(dir, 'token');
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  return { token: new BearerToken(secret), path: file, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The subprotocol entries the client offered, trimmed. */
export function offeredProtocols(request: IncomingMessage): string[] {
  const header = request.headers['sec-websocket-protocol'];
  return header === undefined ? [] : header.split(',').map((p) => p.trim()).filter((p) => p !== '');
}

/** Why the upgrade `request` is refused, or undefined when it may proceed. */
export function refusalOf(request: IncomingMessage, token: BearerToken, allowedOrigins: readonly string[]): Refusal | undefined {
  const origin = request.headers.origin;
  if (origin !== undefined && !allowedOrigins.includes(origin)) {
    return { status: 403, reason: 'this Origin is not allowed (see --allow-origin)' };
  }
  const candidates: string[] = [];
  const authorization = request.headers.authorization;
  const bearer = authorization === undefined ? null : /^Bearer\s+(\S+)$/i.exec(authorization);
  if (bearer !== null) candidates.push(bearer[1]!);
  for (const entry of offeredProtocols(request)) {
    if (entry.startsWith(WS_TOKEN_PROTOCOL_PREFIX)) candidates.push(entry.slice(WS_TOKEN_PROTOCOL_PREFIX.length));
  }
  if (candidates.length === 0) return { status: 401, reason: 'a bearer token is required (Authorization: Bearer, or a bearer.TOKEN subprotocol)' };
  // Every candidate is compared, so the time taken does not tell which one was wrong.
  const accepted = candidates.map((c) => token.matches(c)).includes(true);
  return accepted ? undefined : { status: 401, reason: 'wrong bearer token' };
}
