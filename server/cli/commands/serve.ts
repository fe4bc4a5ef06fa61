/** `layerpipe serve`: protocol 1.0 on stdin/stdout (--stdio), or to every client of a unix socket or WebSocket (--listen, or systemd's socket). */
import { createLogger } from '../../log';
import { loadPolicy } from '../../policy/load';
import { ResourcePool } from '../../service/resources';
import { MemoryGuard } from '../../transfer/memory-guard';
import { serveJsonRpcStdio } from '../../wires/jsonrpc/serve';
import { listenTarget, type ListenTarget } from '../../wires/service/address';
import { serveUntilSignalled, startUnixService, type RunningService } from '../../wires/service/run';
import { startWebSockets } from '../../wires/websocket/setup';
import { parseFlags, systemContextFrom, UsageError, type ProxyOptions } from '../flags';
import { serveOneSession } from '../one-session';
import { packageVersion } from '../version';

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('serve', argv);
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments, got ${JSON.stringify(positionals)}`);
  if (options.stdio) {
    if (options.listen !== undefined || options.webSocketListens.length > 0) throw new UsageError('serve takes --stdio or --listen, not both');
    // A stream socket of its own on fd 1 (a pipe or a socket): libuv writes it non-blocking on the
    // loop, waiting for room with backpressure. A file stream would hand every message to the
    // thread pool (two thread switches each), which halved in-band payload throughput.
    const { Socket } = require('node:net') as typeof import('node:net');
    const output = new Socket({ fd: 1, readable: false, writable: true });
    return serveOneSession('serve', options, ({ log, session, wire }) => serveJsonRpcStdio(process.stdin, output, session, log, wire));
  }
  const target = listenTarget(options.listen, process.env, process.pid);
  if (target === undefined && options.webSocketListens.length === 0) throw new UsageError('serve needs --stdio or --listen unix:PATH|ws://HOST:PORT (or a socket passed by systemd)');
  return runService(options, target);
}

/** The long-running service: one session per connection, all sharing one context (registry connections, tokens, manifests). */
async function runService(options: ProxyOptions, target: ListenTarget | undefined): Promise<number> {
  const policy = loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy });
  const log = createLogger(options.debug);
  const resources = new ResourcePool();
  const serviceOptions = {
    ctx: systemContextFrom(options, log, resources, policy),
    guard: options.memoryGuard ? MemoryGuard.create() : undefined,
    log,
    serverVersion: packageVersion(),
    graceMs: options.gracePeriodMs,
    fifoOpenTimeoutMs: options.fifoOpenTimeoutMs,
  };
  const services: RunningService[] = [];
  let disposeWebSockets = (): void => undefined;
  try {
    await serveUntilSignalled(services, async (started) => {
      if (target !== undefined) started.push(startUnixService(target, serviceOptions));
      if (options.webSocketListens.length === 0) return;
      const settings = { ...options, listens: options.webSocketListens };
      const webSockets = await startWebSockets(settings, serviceOptions, (text) => process.stderr.write(`${text}\n`));
      started.push(...webSockets.services);
      disposeWebSockets = webSockets.dispose;
    }, serviceOptions);
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    disposeWebSockets();
    await resources.close();
  }
  return 0;
}
