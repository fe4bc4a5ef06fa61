/**
 * Registry authentication: WWW-Authenticate challenges, Basic, and the Bearer token flow
 * (anonymous, with a user and password, or with an OAuth2 identity token), with tokens cached
 * per realm, service, repository scope and identity in the TokenCache of the context's
 * registry pool, and dropped when the registry refuses them.
 *
 * The Authorization header this produces is only ever attached, by client.ts, to requests for
 * the registry host that sent the challenge; token requests go to the realm that the registry
 * named, as the protocol requires.
 */
import { createHash } from 'node:crypto';
import { LayerpipeError } from '../../../protocol/errors';
import type { RegistryCredentials } from '../../config/auth';
import { SharedOperation } from './shared';

export interface Challenge {
  /** Lowercased: "bearer", "basic", … */
  readonly scheme: string;
  /** Parameter names lowercased. */
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses WWW-Authenticate header values (RFC 7235): several challenges may share one value,
 * each "Scheme param=value, param="quoted, value"".
 */
export function parseChallenges(values: string | readonly string[] | undefined): Challenge[] {
  if (values === undefined) return [];
  const list = typeof values === 'string' ? [values] : values;
  const out: Challenge[] = [];
  for (const value of list) out.push(...parseChallengeValue(value));
  return out;
}

function parseChallengeValue(text: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < text.length && /[ \t]/.test(text[i]!)) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < text.length && TOKEN_CHAR.test(text[i]!)) i++;
    return text.slice(start, i);
  };
  let current: { scheme: string; params: Record<string, string> } | undefined;
  while (i < text.length) {
    skipSpace();
    if (text[i] === ',') {
      i++;
      continue;
    }
    const start = i;
    const name = token();
    if (name === '') break; // malformed: keep what was parsed
    skipSpace();
    if (text[i] === '=' && current !== undefined) {
      i++;
      skipSpace();
      let value: string;
      if (text[i] === '"') {
        i++;
        value = '';
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          value += text[i];
          i++;
        }
        i++;
      } else {
        value = token();
      }
      current.params[name.toLowerCase()] = value;
    } else if (text[i] === '=') {
      break; // a parameter before any scheme
    } else {
      i = start + name.length;
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** What a token request is for. */
export interface TokenRequest {
  readonly realm: string;
  readonly service: string | undefined;
  /** "repository:NAME:pull" scopes. */
  readonly scopes: readonly string[];
  readonly credentials: RegistryCredentials | undefined;
}

export interface IssuedToken {
  readonly token: string;
  /** Seconds the token is good for (at least 60, as registries' clients assume). */
  readonly expiresInSeconds: number;
}

/** Parses a token endpoint's JSON answer ("token" or OAuth2's "access_token"). */
export function parseTokenResponse(body: string): IssuedToken {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new LayerpipeError('token endpoint answered something that is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) throw new LayerpipeError('token endpoint answered something that is not a JSON object');
  const o = parsed as Record<string, unknown>;
  const token = typeof o.token === 'string' && o.token !== '' ? o.token : typeof o.access_token === 'string' ? o.access_token : '';
  if (token === '') throw new LayerpipeError('token endpoint answered without a token');
  const expiresIn = typeof o.expires_in === 'number' && Number.isFinite(o.expires_in) ? o.expires_in : 0;
  return { token, expiresInSeconds: Math.max(expiresIn, MIN_TOKEN_LIFETIME_SECONDS) };
}

const MIN_TOKEN_LIFETIME_SECONDS = 60;
/** A token is renewed this long before it would expire, so it does not expire in flight. */
const EXPIRY_MARGIN_MS = 5_000;

interface CachedToken {
  readonly token: string;
  readonly expiresAt: number;
}

/**
 * Bearer tokens of one owner (a RegistryPool): reopening an image, or another image of the
 * repository, reuses them. Keys carry a hash of the identity, never the secret.
 */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, SharedOperation<CachedToken>>();

  /** A token still good for a while, or one fetched with `fetch` (one fetch for concurrent askers). */
  get(key: string, what: string, signal: AbortSignal | undefined, fetch: (signal: AbortSignal) => Promise<IssuedToken>): Promise<CachedToken> {
    const cached = this.tokens.get(key);
    if (cached !== undefined && cached.expiresAt > Date.now()) return Promise.resolve(cached);
    let shared = this.pending.get(key);
    if (shared === undefined || !shared.joinable) {
      const operation: SharedOperation<CachedToken> = new SharedOperation(what, async (fetchSignal) => {
        try {
          const issued = await fetch(fetchSignal);
          const entry = { token: issued.token, expiresAt: Date.now() + issued.expiresInSeconds * 1000 - EXPIRY_MARGIN_MS };
          this.tokens.set(key, entry);
          return entry;
        } finally {
          if (this.pending.get(key) === operation) this.pending.delete(key);
        }
      });
      shared = operation;
      this.pending.set(key, shared);
    }
    return shared.join(signal);
  }

  delete(key: string): void {
    this.tokens.delete(key);
  }

  clear(): void {
    this.tokens.clear();
    this.pending.clear();
  }
}

/** An identity without the secret in it (a hash), so tokens of different users never mix. */
function identityKey(credentials: RegistryCredentials | undefined): string {
  if (credentials === undefined) return 'anonymous';
  const secret = credentials.kind === 'basic' ? credentials.password : credentials.token;
  return createHash('sha256').update(`${credentials.kind}\0${credentials.username}\0${secret}`).digest('hex');
}

/** Who this client is at one registry. */
export interface AuthIdentity {
  /** From --creds/--username, the auth files or a helper; undefined = anonymous. */
  readonly credentials: RegistryCredentials | undefined;
  /** --registry-token: sent as the Bearer token as is, no token flow. */
  readonly registryToken: string | undefined;
}

export type TokenFetcher = (request: TokenRequest, signal: AbortSignal) => Promise<IssuedToken>;

/**
 * Produces the Authorization header for a registry request given the challenges the registry
 * sent, fetching (and caching) bearer tokens with the fetcher.
 */
export class RegistryAuthenticator {
  constructor(
    private readonly identity: AuthIdentity,
    private readonly tokens: TokenCache,
    private readonly fetchToken: TokenFetcher,
  ) {}

  /**
   * The header value, or undefined to go anonymous (no challenge, or none we can answer).
   * `signal` stops waiting for a token (CancelledError).
   */
  async authorization(challenges: readonly Challenge[], scope: string, signal: AbortSignal | undefined): Promise<string | undefined> {
    for (const challenge of challenges) {
      if (challenge.scheme === 'bearer') {
        if (this.identity.registryToken !== undefined) return `Bearer ${this.identity.registryToken}`;
        const token = await this.bearerToken(challenge, scope, signal);
        return `Bearer ${token.token}`;
      }
      if (challenge.scheme === 'basic') {
        const creds = this.identity.credentials;
        if (creds?.kind === 'basic') return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
        return undefined;
      }
    }
    return undefined;
  }

  /** Forgets the cached token a refused request carried, so the next one gets a fresh token. */
  forget(challenges: readonly Challenge[], scope: string): void {
    for (const challenge of challenges) {
      if (challenge.scheme === 'bearer') this.tokens.delete(this.cacheKey(challenge, scope));
    }
  }

  /** Whether the identity has anything to retry with after a 401 (a user or token). */
  get hasCredentials(): boolean {
    return this.identity.credentials !== undefined || this.identity.registryToken !== undefined;
  }

  private cacheKey(challenge: Challenge, scope: string): string {
    return [challenge.params.realm ?? '', challenge.params.service ?? '', scope, identityKey(this.identity.credentials)].join('\0');
  }

  private bearerToken(challenge: Challenge, scope: string, signal: AbortSignal | undefined): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (realm === undefined || realm === '') {
      return Promise.reject(new LayerpipeError('the registry asked for a bearer token without naming a realm'));
    }
    // The scope the challenge names (e.g. after insufficient_scope) is asked for alongside ours.
    const scopes = [scope];
    const challengeScope = challenge.params.scope;
    if (challengeScope !== undefined && challengeScope !== '' && challengeScope !== scope) scopes.push(...challengeScope.split(' '));
    const request: TokenRequest = { realm, service: challenge.params.service, scopes, credentials: this.identity.credentials };
    return this.tokens.get(this.cacheKey(challenge, scope), `requesting a bearer token for ${scope}`, signal, (fetchSignal) => this.fetchToken(request, fetchSignal));
  }
}
