/**
 * The HTTP plumbing under the registry client: per owner, one keep-alive undici dispatcher per
 * host and TLS setting (so connections are reused across requests and images), proxies chosen from
 * HTTP_PROXY / HTTPS_PROXY / NO_PROXY the way Go programs such as skopeo choose them, the
 * system CA bundle, and URL redaction for --debug logs.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Agent, Dispatcher, ProxyAgent } from 'undici';
import { CancelledError } from '../../../protocol/errors';
import { createAgent, createProxyAgent } from './undici';

/** How to talk TLS to one host. */
export interface TlsSettings {
  /** false: accept any certificate (insecure registries, --tls-verify=false). */
  readonly verify: boolean;
  /** Extra CAs from certs.d / --cert-dir, added to the system ones. */
  readonly ca: readonly Buffer[];
  /** Client certificate and key from certs.d, if any. */
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
}

/** Where Go and distributions keep the system CA bundle; the first readable one wins. */
const SYSTEM_CA_FILES: readonly string[] = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/pki/tls/cacert.pem',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

/**
 * The machine's CA certificates, read now. Node's built-in list is only the fallback:
 * registries inside companies are usually trusted through the system bundle, as skopeo trusts them.
 */
export function readSystemCaCertificates(env: NodeJS.ProcessEnv = process.env): string[] {
  const files = env.SSL_CERT_FILE ? [env.SSL_CERT_FILE, ...SYSTEM_CA_FILES] : SYSTEM_CA_FILES;
  for (const file of files) {
    try {
      const pem = readFileSync(file, 'utf8');
      if (pem.includes('-----BEGIN CERTIFICATE-----')) return [pem];
    } catch {
      // not on this distribution; try the next place
    }
  }
  return [...tls.rootCertificates];
}

const AGENT_OPTIONS = { keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000 } as const;
/** How long close() lets requests still in flight finish before their connections are destroyed. */
const CLOSE_GRACE_MS = 500;

interface HostDispatchers {
  direct?: Agent;
  readonly viaProxy: Map<string, ProxyAgent>;
}

function tlsKey(host: string, settings: TlsSettings): string {
  const h = createHash('sha256').update(settings.verify ? 'verify' : 'noverify');
  for (const part of [...settings.ca, settings.cert ?? Buffer.alloc(0), settings.key ?? Buffer.alloc(0)]) h.update(part).update('\0');
  return `${host}\0${h.digest('hex')}`;
}

/**
 * The keep-alive connections of one owner (a RegistryPool): one undici dispatcher per host and
 * TLS setting, direct or per proxy, so connections are reused across requests and images of
 * that owner and never shared with another. close() ends them all.
 */
export class ConnectionPool {
  private readonly dispatchers = new Map<string, HostDispatchers>();
  private systemCas: string[] | undefined;
  private closed = false;

  /** The system bundle, parsed once per pool (it is MiBs; reading it per connection would cost milliseconds). */
  systemCaCertificates(): string[] {
    this.systemCas ??= readSystemCaCertificates();
    return this.systemCas;
  }

  /** The dispatcher for a URL: direct or through the proxy the environment names for it. */
  dispatcherFor(url: URL, settings: TlsSettings, env: NodeJS.ProcessEnv = process.env): Dispatcher {
    // A request after close would open connections nobody closes any more.
    if (this.closed) throw new CancelledError(`connecting to ${url.host}: the registry connections were closed by their owner`);
    const key = tlsKey(url.host, settings);
    let entry = this.dispatchers.get(key);
    if (entry === undefined) {
      entry = { viaProxy: new Map() };
      this.dispatchers.set(key, entry);
    }
    const proxy = proxyFor(url, env);
    if (proxy === undefined) {
      entry.direct ??= createAgent({ ...AGENT_OPTIONS, connect: this.connectOptions(settings) });
      return entry.direct;
    }
    let agent = entry.viaProxy.get(proxy);
    if (agent === undefined) {
      // requestTls is the TLS to the registry inside the tunnel; the proxy itself is trusted as the system trusts it.
      agent = createProxyAgent({ ...AGENT_OPTIONS, uri: proxy, requestTls: this.connectOptions(settings), proxyTls: { ca: this.systemCaCertificates() } });
      entry.viaProxy.set(proxy, agent);
    }
    return agent;
  }

  /**
   * Closes every connection: idle ones at once, requests still running after a short grace are
   * destroyed (their owner is gone; nobody will read them). Later requests are refused.
   */
  async close(): Promise<void> {
    this.closed = true;
    const all: Dispatcher[] = [];
    for (const entry of this.dispatchers.values()) {
      if (entry.direct !== undefined) all.push(entry.direct);
      all.push(...entry.viaProxy.values());
    }
    this.dispatchers.clear();
    await Promise.all(all.map((d) => closeDispatcher(d)));
  }

  /** One parsed TLS context per setting: parsing the system bundle per connection would cost milliseconds each. */
  private connectOptions(settings: TlsSettings): tls.ConnectionOptions {
    // Without verification no CA is consulted: no system bundle, and an empty `ca` rather than none, since
    // with none Node parses its ~140 built-in roots into a fresh store for this context (~200M instructions).
    const secureContext = tls.createSecureContext({
      ca: settings.verify ? [...this.systemCaCertificates(), ...settings.ca.map((c) => c.toString('utf8'))] : [],
      ...(settings.cert !== undefined ? { cert: settings.cert } : {}),
      ...(settings.key !== undefined ? { key: settings.key } : {}),
    });
    return { rejectUnauthorized: settings.verify, secureContext };
  }
}

async function closeDispatcher(dispatcher: Dispatcher): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceful = dispatcher.close().then(() => true, () => true);
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS);
  });
  const done = await Promise.race([graceful, late]);
  clearTimeout(timer);
  if (!done) await dispatcher.destroy(new CancelledError('registry connection closed by its owner')).catch(() => undefined);
}

function envValue(env: NodeJS.ProcessEnv, upper: string): string | undefined {
  const value = env[upper] ?? env[upper.toLowerCase()];
  return value === undefined || value === '' ? undefined : value;
}

/** A host name without brackets, lowercased. */
function bareHost(hostname: string): string {
  return hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/**
 * The proxy URL for a request, by Go's rules: HTTPS_PROXY for https URLs and HTTP_PROXY for
 * http ones (no falling back from one to the other), never for localhost or loopback
 * addresses, and not for hosts NO_PROXY matches ("*", a host and its subdomains, ".domain"
 * for subdomains, IP addresses and CIDR ranges, each optionally with ":port").
 */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const raw = url.protocol === 'https:' ? envValue(env, 'HTTPS_PROXY') : url.protocol === 'http:' ? envValue(env, 'HTTP_PROXY') : undefined;
  if (raw === undefined) return undefined;
  const host = bareHost(url.hostname);
  if (host === 'localhost' || host.endsWith('.localhost')) return undefined;
  if (net.isIP(host) !== 0 && isLoopback(host)) return undefined;
  const port = url.port === '' ? defaultPort(url.protocol) : Number(url.port);
  if (noProxyMatches(host, port, envValue(env, 'NO_PROXY') ?? '')) return undefined;
  // Go accepts a bare host:port and means http://host:port.
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
}

function isLoopback(ip: string): boolean {
  if (net.isIPv4(ip)) return ip.startsWith('127.');
  return ip === '::1' || /^::ffff:127\./i.test(ip);
}

function noProxyMatches(host: string, port: number, noProxy: string): boolean {
  for (const rawEntry of noProxy.split(/[\s,]+/)) {
    let entry = rawEntry.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (net.isIP(host) !== 0 && cidrContains(entry, host)) return true;
      continue;
    }
    const split = splitHostPort(entry);
    entry = split.host;
    const entryPort = split.port;
    if (entryPort !== undefined && entryPort !== port) continue;
    if (net.isIP(entry) !== 0) {
      if (entry === host) return true;
      continue;
    }
    if (entry.startsWith('*.')) entry = entry.slice(1);
    if (entry.startsWith('.')) {
      if (host.endsWith(entry)) return true;
      continue;
    }
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** "host", "host:port", "[v6]:port" or a bare IPv6 address, as NO_PROXY entries are written. */
function splitHostPort(entry: string): { host: string; port: number | undefined } {
  if (net.isIPv6(entry)) return { host: entry, port: undefined };
  const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry) ?? /^([^:]+)(?::(\d+))?$/.exec(entry);
  if (match === null) return { host: entry, port: undefined };
  return { host: match[1]!, port: match[2] === undefined ? undefined : Number(match[2]) };
}

function cidrContains(cidr: string, ip: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (base === undefined || !Number.isInteger(bits)) return false;
  const family = net.isIPv4(base) ? 'ipv4' : net.isIPv6(base) ? 'ipv6' : undefined;
  if (family === undefined || (family === 'ipv4') !== net.isIPv4(ip)) return false;
  const list = new net.BlockList();
  try {
    list.addSubnet(base, bits, family);
  } catch {
    return false;
  }
  return list.check(ip, family);
}

/** A URL fit for a log line: no user info, query values replaced (presigned URLs carry secrets). */
export function redactUrl(url: URL): string {
  const copy = new URL(url.toString());
  copy.username = '';
  copy.password = '';
  const keys = [...new Set(copy.searchParams.keys())];
  copy.search = '';
  return keys.length === 0 ? copy.toString() : `${copy.toString()}?${keys.map((k) => `${encodeURIComponent(k)}=…`).join('&')}`;
}
