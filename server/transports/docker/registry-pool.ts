/**
 * Everything the docker:// transport keeps beyond one image, owned by the SystemContext's
 * resources (one proxy session today; a service may share one between sessions on purpose):
 * registry clients (their pings and challenges), keep-alive connections, bearer tokens,
 * manifests read by digest, the parsed system CA bundle and auth files that can be read only once. Two contexts with their
 * own resources share none of it; closing one pool closes its connections only.
 */
import { createHash } from 'node:crypto';
import { ReadOnceFiles } from '../../config/auth';
import type { ClosableResource, SystemContext } from '../../image/types';
import { TokenCache, type AuthIdentity } from './auth';
import { RegistryClient, type ClientSettings, type Endpoint } from './client';
import { HeldBytes } from './held-bytes';
import { ConnectionPool } from './http';
import { ManifestCache } from './manifest-cache';

/** The key of the pool in SystemContext.resources. */
export const REGISTRY_POOL_KEY = 'docker-registry-pool';

export class RegistryPool implements ClosableResource {
  readonly connections = new ConnectionPool();
  readonly tokens = new TokenCache();
  readonly heldBytes = new HeldBytes();
  readonly authFiles = new ReadOnceFiles();
  readonly manifests = new ManifestCache();
  private readonly clients = new Map<string, RegistryClient>();
  /** Loggers are objects, not values: each gets a number so that clients of two loggers stay apart. */
  private readonly loggerIds = new WeakMap<object, number>();
  private nextLoggerId = 0;

  /** The pool of the context's owner, made on first use. */
  static of(ctx: SystemContext): RegistryPool {
    return ctx.resources.get(REGISTRY_POOL_KEY, () => new RegistryPool());
  }

  /** The client for an endpoint, TLS setting, identity and settings: a reopened image reuses its ping and challenges. */
  client(endpoint: Endpoint, identity: AuthIdentity, settings: ClientSettings): RegistryClient {
    const key = this.clientKey(endpoint, identity, settings);
    let client = this.clients.get(key);
    if (client === undefined) {
      client = new RegistryClient(endpoint, identity, settings, { connections: this.connections, tokens: this.tokens, heldBytes: this.heldBytes });
      this.clients.set(key, client);
    }
    return client;
  }

  /** Closes every connection (requests still running are ended); tokens and clients are forgotten. */
  async close(): Promise<void> {
    this.clients.clear();
    this.tokens.clear();
    this.manifests.clear();
    await this.connections.close();
  }

  /** A hash, so that no secret is kept as a map key in the clear. */
  private clientKey(endpoint: Endpoint, identity: AuthIdentity, settings: ClientSettings): string {
    const { tls } = endpoint;
    const h = createHash('sha256');
    h.update(JSON.stringify([
      endpoint.registry, endpoint.host, tls.verify, endpoint.allowHttp, settings.userAgent, settings.stallTimeoutMs, settings.attempts,
      settings.retryDelayMs, settings.maxRetryDelayMs, settings.operationTimeoutMs ?? null, this.loggerId(settings.logger),
      settings.parallelRanges,
    ]));
    for (const b of [...tls.ca, tls.cert ?? Buffer.alloc(0), tls.key ?? Buffer.alloc(0)]) h.update(b).update('\0');
    const c = identity.credentials;
    h.update(JSON.stringify([c?.kind ?? '', c?.username ?? '', c === undefined ? '' : c.kind === 'basic' ? c.password : c.token, identity.registryToken ?? '']));
    return h.digest('hex');
  }

  private loggerId(logger: object | undefined): number {
    if (logger === undefined) return -1;
    let id = this.loggerIds.get(logger);
    if (id === undefined) {
      id = this.nextLoggerId++;
      this.loggerIds.set(logger, id);
    }
    return id;
  }
}
