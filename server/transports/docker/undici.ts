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
 * V8 settings for a process that talks to registries, set once, at its first connection (before
 * undici compiles its HTTP parser, llhttp, and before any body is streamed):
 *
 * - no Wasm tier-up: TurboFan would recompile llhttp at the first large download, ~30 MiB of
 *   compiler memory for no measurable speed (the parser only walks headers, skips body bytes);
 * - the young generation stops growing (2 MiB semi-spaces by then): V8 doubles it as objects
 *   keep surviving scavenges, as a long stream's queued chunks do, and it reached 8 MiB per
 *   semi-space, resident, for a few hundred KiB of live young objects (memory-bench: -4 MiB);
 */
function streamingFlags(): void {
  for (const flag of STREAMING_FLAGS) setFlagsFromString(flag);
}

const STREAMING_FLAGS: readonly string[] = ['--liftoff-only', '--semi-space-growth-factor=1'];

/**
 * What sets V8's flags back as they were before streamingFlags(): V8's defaults, and the two
 * flags V8 turns off with --liftoff-only. V8 takes a code cache only under the flags it was made
 * with, and a start checks the bundle's cache before any connection, so build-bundle.ts makes it
 * with these set back.
 */
export const UNDO_STREAMING_FLAGS: readonly string[] = ['--no-liftoff-only', '--wasm-tier-up', '--wasm-dynamic-tiering', '--semi-space-growth-factor=2'];

/** An Agent's ConnectWatch, kept on the Agent so that request() finds it from the dispatcher. */
const CONNECT_WATCH = Symbol('layerpipe connect watch');
type WatchedAgent = Agent & { [CONNECT_WATCH]?: ConnectWatch };

/** An Agent whose connections still being set up stop when no request waits for them (connect-watch.ts). */
export function createAgent(options: Agent.Options): Agent {
  streamingFlags();
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
  streamingFlags();
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
