/**
 * undici, loaded by part, when the first registry connection is made. The package's index loads
 * all it has (fetch, WebSocket, EventSource, cookies, caches, mocks: most of its load time),
 * while the registry client needs an Agent and `request` on it. Proxies (HTTP(S)_PROXY) get the
 * index: ProxyAgent tunnels through Dispatcher.prototype.connect, which only the index installs.
 */
import type { Agent, Dispatcher, ProxyAgent } from 'undici';
import { ConnectWatch } from './connect-watch';
import { liftoffOnlyFromNow } from './llhttp-tiers';

type RequestOnDispatcher = (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

/** A request to a full URL on a chosen dispatcher (no global dispatcher is ever made). */
export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
  readonly dispatcher: Dispatcher;
  readonly method?: Dispatcher.HttpMethod;
};

/** An Agent's ConnectWatch, kept on the Agent so that request() finds it from the dispatcher. */
const CONNECT_WATCH = Symbol('layerpipe connect watch');
type WatchedAgent = Agent & { [CONNECT_WATCH]?: ConnectWatch };

/**
 * The largest response header block a registry may send: node:http's default, set here so that
 * undici need not load node:http to learn it (bundle-undici.ts).
 */
export const RESPONSE_HEADER_LIMIT_BYTES = 16 * 1024;

/** An Agent whose connections still being set up stop when no request waits for them (connect-watch.ts). */
export function createAgent(agentOptions: Agent.Options): Agent {
  const AgentClass = require('undici/lib/dispatcher/agent') as typeof Agent;
  const options: Agent.Options = { maxHeaderSize: RESPONSE_HEADER_LIMIT_BYTES, ...agentOptions };
  const { connect, connectTimeout, ...rest } = options;
  // A connector of the caller's own compiles the parser outside the watch: the flag stays set.
  if (typeof connect === 'function') {
    liftoffOnlyFromNow();
    return new AgentClass(options);
  }
  const watch = new ConnectWatch();
  // A connector function takes undici's connect settings itself: the timeout goes with the TLS options.
  const agent: WatchedAgent = new AgentClass({ ...rest, connect: watch.connector({ ...connect, ...(connectTimeout != null ? { timeout: connectTimeout } : {}) }) });
  agent[CONNECT_WATCH] = watch;
  return agent;
}

/** Through a proxy, undici's own connectors make the connections: the flag stays set from here on. */
export function createProxyAgent(options: ProxyAgent.Options): ProxyAgent {
  liftoffOnlyFromNow();
  return new (require('undici') as typeof import('undici')).ProxyAgent(options);
}

/** undici's `request(url, options)`, with the dispatcher required. */
export function request(url: URL, options: RequestOptions): Promise<Dispatcher.ResponseData> {
  const requestOn = require('undici/lib/api/api-request') as RequestOnDispatcher;
  const { dispatcher, ...rest } = options;
  const run = (): Promise<Dispatcher.ResponseData> =>
    requestOn.call(dispatcher, { ...rest, origin: url.origin, path: `${url.pathname}${url.search}`, method: rest.method ?? 'GET' });
  const watch = (dispatcher as WatchedAgent)[CONNECT_WATCH];
  return watch === undefined ? run() : watch.track(url.origin, rest.signal instanceof AbortSignal ? rest.signal : undefined, run);
}
