/** `layerpipe serve`: protocol 1.0 on stdin/stdout (--stdio), or to every client of a unix socket or WebSocket (--listen, or systemd's socket). */
import { createWriteStream, fstatSync } from 'node:fs';
import type { Writable } from 'node:stream';
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

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('serve', argv);
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments, got ${JSON.stringify(positionals)}`);
  if (options.stdio) {
    if (options.listen !== undefined || options.webSocketListens.length > 0) throw new UsageError('serve takes --stdio or --listen, not both');
    const output = stdoutWriter();
    return serveOneSession('serve', options, ({ log, session, wire }) => serveJsonRpcStdio(process.stdin, output, session, log, wire));
  }
  const target = listenTarget(options.listen, process.env, process.pid);
  if (target === undefined && options.webSocketListens.length === 0) throw new UsageError('serve needs --stdio or --listen unix:PATH|ws://HOST:PORT (or a socket passed by systemd)');
  return runService(options, target);
}

/**
 * Where `serve --stdio` writes. A pipe or a socket (what a client's spawn gives) gets a stream
 * socket of its own on fd 1: libuv writes it non-blocking on the loop, with backpressure. A file
 * or a terminal, which libuv cannot open so, gets a file stream, which writes from the thread
 * pool (two thread switches a message: half the in-band payload throughput of a socket).
 */
function stdoutWriter(): Writable {
  const stat = fstatSync(1);
  if (!stat.isFIFO() && !stat.isSocket()) return createWriteStream('/dev/stdout', { fd: 1 });
  const { Socket } = require('node:net') as typeof import('node:net');
  return new Socket({ fd: 1, readable: false, writable: true });
}

/** The long-running service: one session per connection, all sharing one context (registry connections, tokens, manifests). */
async function runService(options: ProxyOptions, target: ListenTarget | undefined): Promise<number> {
  const policy = await loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy });
  const log = createLogger(options.debug);
  const resources = new ResourcePool();
  const serviceOptions = {
    ctx: systemContextFrom(options, log, resources, policy),
    guard: options.memoryGuard ? MemoryGuard.create() : undefined,
    log,
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
