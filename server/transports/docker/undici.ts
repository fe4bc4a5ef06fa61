/**
 * undici, loaded by part, when the first registry connection is made. The package's index loads
 * all it has (fetch, WebSocket, EventSource, cookies, caches, mocks: most of its load time),
 * while the registry client needs an Agent and `request` on it. Proxies (HTTP(S)_PROXY) get the
 * index: ProxyAgent tunnels through Dispatcher.prototype.connect, which only the index installs.
 */
import type { Agent, Dispatcher, ProxyAgent } from 'undici';
import { setFlagsFromString } from 'node:v8';
import { ConnectWatch } from './connect-watch';

type RequestOnDispatcher = (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

/** A request to a full URL on a chosen dispatcher (no global dispatcher is ever made). */
export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
  readonly dispatcher: Dispatcher;
  readonly method?: Dispatcher.HttpMethod;
};

/**
 * Wasm tier-up would recompile undici's HTTP parser (llhttp) with TurboFan at the first large
 * download: ~30 MiB of compiler memory for no measurable speed, the parser only walks headers
 * and skips over body bytes. Set once, before undici compiles the parser (at its first connection).
 */
function liftoffOnly(): void {
  setFlagsFromString(LIFTOFF_ONLY);
}

const LIFTOFF_ONLY = '--liftoff-only';

/**
 * What sets V8's flags back as they were before liftoffOnly(): it and the two flags V8 turns off
 * with it. V8 takes a code cache only under the flags it was made with, and a start checks the
 * bundle's cache before any connection, so build-bundle.ts makes it with these set back.
 */
export const UNDO_LIFTOFF_ONLY: readonly string[] = ['--no-liftoff-only', '--wasm-tier-up', '--wasm-dynamic-tiering'];

/** An Agent's ConnectWatch, kept on the Agent so that request() finds it from the dispatcher. */
const CONNECT_WATCH = Symbol('layerpipe connect watch');
type WatchedAgent = Agent & { [CONNECT_WATCH]?: ConnectWatch };

/** An Agent whose connections still being set up stop when no request waits for them (connect-watch.ts). */
export function createAgent(options: Agent.Options): Agent {
  liftoffOnly();
  const AgentClass = require('undici/lib/dispatcher/agent') as typeof Agent;
  const { connect, connectTimeout, ...rest } = options;
  if (typeof connect === 'function') return new AgentClass(options);
  const watch = new ConnectWatch();
  // A connector function takes undici's connect settings itself: the timeout goes with the TLS options.
  const agent: WatchedAgent = new AgentClass({ ...rest, connect: watch.connector({ ...connect, ...(connectTimeout != null ? { timeout: connectTimeout } : {}) }) });
  agent[CONNECT_WATCH] = watch;
  return agent;
}

export function createProxyAgent(options: ProxyAgent.Options): ProxyAgent {
  liftoffOnly();
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
