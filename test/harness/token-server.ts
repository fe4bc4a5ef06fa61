/**
 * A registry token server (the Docker "token authentication" flow) for docker-registry's
 * `auth: token` mode: it checks Basic credentials (GET) or a password grant (POST), and issues
 * RS256 JWTs whose header carries the signing certificate as `x5c`. docker-registry 2.8
 * accepts a token when `iss` is its configured issuer, `aud` (one string) its service, the
 * time is within nbf/exp (60 s leeway), the x5c chain verifies to its rootcertbundle, and the
 * `access` claim grants every action the request needs.
 */
import { randomUUID, sign } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenServerOptions {
  readonly users: Readonly<Record<string, string>>;
  readonly issuer: string;
  readonly service: string;
  /** RSA private key (PEM) whose certificate is `certDerBase64`. */
  readonly signingKeyPem: string;
  /** Base64 DER of the signing certificate; the registry's rootcertbundle must verify it. */
  readonly certDerBase64: string;
  /** Callers without credentials get pull access (otherwise a token granting nothing). */
  readonly anonymousPull?: boolean;
  readonly lifetimeSeconds?: number;
}

export interface ResourceAccess {
  type: string;
  name: string;
  actions: string[];
}

/** One request the token server answered. */
export interface TokenRequestRecord {
  readonly method: string;
  /** The authenticated user; undefined for anonymous callers and refused ones. */
  readonly user: string | undefined;
  readonly scopes: readonly string[];
  readonly status: number;
  readonly granted: readonly ResourceAccess[];
}

export interface TokenServer {
  /** The realm URL to put in the registry's config. */
  readonly realm: string;
  readonly port: number;
  readonly requests: TokenRequestRecord[];
  close(): Promise<void>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** Parses "repository:NAME:pull,push" (NAME may itself hold colons, e.g. a port). */
export function parseScope(scope: string): ResourceAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter((a) => a !== '') };
}

function signToken(opts: TokenServerOptions, subject: string, access: readonly ResourceAccess[]): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', x5c: [opts.certDerBase64] };
  const claims = {
    iss: opts.issuer,
    sub: subject,
    aud: opts.service,
    exp: now + (opts.lifetimeSeconds ?? 300),
    nbf: now - 1,
    iat: now,
    jti: randomUUID(),
    access,
  };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(signingInput), opts.signingKeyPem);
  return `${signingInput}.${b64url(signature)}`;
}

type Caller = { kind: 'anonymous' } | { kind: 'user'; name: string } | { kind: 'refused' };

function basicCaller(header: string | undefined, users: Readonly<Record<string, string>>): Caller {
  if (header === undefined) return { kind: 'anonymous' };
  const m = /^Basic\s+(\S+)$/i.exec(header);
  if (m === null) return { kind: 'refused' };
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { kind: 'refused' };
  return passwordCaller(decoded.slice(0, colon), decoded.slice(colon + 1), users);
}

function passwordCaller(user: string, password: string, users: Readonly<Record<string, string>>): Caller {
  return Object.prototype.hasOwnProperty.call(users, user) && users[user] === password ? { kind: 'user', name: user } : { kind: 'refused' };
}

/** Users get what they ask for; anonymous callers get pull at most (when allowed). */
function grant(caller: Caller, scopes: readonly string[], anonymousPull: boolean): ResourceAccess[] {
  const granted: ResourceAccess[] = [];
  for (const scope of scopes) {
    const wanted = parseScope(scope);
    if (wanted === undefined) continue;
    const actions = caller.kind === 'user' ? wanted.actions : anonymousPull ? wanted.actions.filter((a) => a === 'pull') : [];
    if (actions.length > 0) granted.push({ ...wanted, actions });
  }
  return granted;
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const requests: TokenRequestRecord[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://token.invalid');
      let caller: Caller;
      let scopes: string[];
      if (req.method === 'POST') {
        // The OAuth2 form containers/image and docker use when they hold a refresh token, and
        // some clients for passwords too; only the password grant is served.
        const form = new URLSearchParams(await readBody(req));
        scopes = form.getAll('scope').flatMap((s) => s.split(' '));
        caller = form.get('grant_type') === 'password' ? passwordCaller(form.get('username') ?? '', form.get('password') ?? '', opts.users) : { kind: 'refused' };
      } else {
        scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' '));
        caller = basicCaller(req.headers.authorization, opts.users);
      }
      const user = caller.kind === 'user' ? caller.name : undefined;
      if (caller.kind === 'refused') {
        requests.push({ method: req.method ?? '', user, scopes, status: 401, granted: [] });
        res.writeHead(401, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
        return;
      }
      const granted = grant(caller, scopes, opts.anonymousPull ?? false);
      requests.push({ method: req.method ?? '', user, scopes, status: 200, granted });
      const token = signToken(opts, user ?? '', granted);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ token, access_token: token, expires_in: opts.lifetimeSeconds ?? 300, issued_at: new Date().toISOString() }));
    })().catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
