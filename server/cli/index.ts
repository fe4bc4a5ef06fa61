/** The `layerpipe` command: experimental-image-proxy (the skopeo-compatible server, or 1.0 by its first packet), serve (protocol 1.0) and inspect. */
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { errorMessage, PolicyDeniedError } from '../../protocol/errors';
import { createLogger, type Logger } from '../log';
import { loadPolicy } from '../policy/load';
import { ResourcePool } from '../service/resources';
import { Session } from '../service/session';
import { MemoryGuard } from '../transfer/memory-guard';
import { SessionFifos } from '../transfer/sinks/fifo';
import { serveConnection, type JsonRpcWireOptions, type WireEnd } from '../wires/detect';
import { serveJsonRpcStdio } from '../wires/jsonrpc/serve';
import { listenTarget, type ListenTarget } from '../wires/service/address';
import { serveUntilSignalled, startUnixService, type RunningService } from '../wires/service/run';
import { startWebSockets } from '../wires/websocket/setup';
import { flagHelp, parseFlags, systemContextFrom, UsageError, type CommandName, type ProxyOptions } from './flags';
import { inspectImage } from './inspect';

const EXIT_USAGE = 2;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  return [
    'Usage: layerpipe COMMAND [flags]',
    '',
    'Commands:',
    '  experimental-image-proxy   serve the skopeo image-proxy wire, or protocol 1.0, on a SOCK_SEQPACKET socket (fd 0 or --sockfd)',
    '  serve --stdio              serve protocol 1.0 (JSON-RPC 2.0) on stdin/stdout',
    '  serve --listen unix:PATH   serve every client of a SOCK_SEQPACKET unix socket (0.2.x or 1.0 by its first packet)',
    '  serve --listen ws://H:P    serve protocol 1.0 on a token-protected WebSocket (browsers, WebAssembly hosts); repeatable',
    '  inspect IMAGE              show the digest, platform, config, layers, signatures and policy verdict of IMAGE',
    '  version                    print the version',
    '',
    'experimental-image-proxy flags:',
    flagHelp('experimental-image-proxy'),
    '',
    'serve flags:',
    flagHelp('serve'),
  ].join('\n');
}

interface Served {
  readonly log: Logger;
  readonly session: Session;
  readonly wire: JsonRpcWireOptions;
}

/**
 * Runs one session with the command's flags: the policy is read before anything is served,
 * a signal ends the session as EOF would (transfers stop, files and connections are released),
 * and the session and its resources are closed however serving ends.
 */
async function serveOneSession(command: CommandName, options: ProxyOptions, serve: (served: Served) => Promise<WireEnd>): Promise<number> {
  const policy = loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy });
  const log = createLogger(options.debug);
  const resources = new ResourcePool();
  const session = new Session({ ctx: systemContextFrom(options, log, resources, policy), guard: options.memoryGuard ? MemoryGuard.create() : undefined });
  const onSignal = (signal: NodeJS.Signals): void => {
    log.debug(`exiting: ${signal}`);
    void session.close().then(() => resources.close()).finally(() => process.exit(0));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    // FIFO payloads (1.0) live in a private directory removed when the session closes.
    const fifos = new SessionFifos({ signal: session.signal, openTimeoutMs: options.fifoOpenTimeoutMs });
    const why = await serve({ log, session, wire: { serverVersion: packageVersion(), openFifo: (what) => fifos.openFifoSink(what) } });
    log.debug(`${command} exiting: ${why}`);
  } finally {
    await session.close();
    await resources.close();
  }
  return 0;
}

/** The skopeo-compatible command; a first packet in JSON-RPC 2.0 gets protocol 1.0 instead. */
async function runProxy(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('experimental-image-proxy', argv);
  if (positionals.length > 0) throw new UsageError(`experimental-image-proxy takes no arguments, got ${JSON.stringify(positionals)}`);
  return serveOneSession('experimental-image-proxy', options, ({ log, session, wire }) => serveConnection(options.sockfd, session, log, wire));
}

/** Protocol 1.0 as a service: on stdin/stdout (--stdio), or to every client of a unix socket (--listen, or systemd's socket). */
async function runServe(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('serve', argv);
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments, got ${JSON.stringify(positionals)}`);
  if (options.stdio) {
    if (options.listen !== undefined || options.webSocketListens.length > 0) throw new UsageError('serve takes --stdio or --listen, not both');
    // Not process.stdout: Node writes a pipe there synchronously, so a client slow to read would
    // stall the whole server. A file stream writes from the thread pool, with backpressure.
    const output = createWriteStream('/dev/stdout', { fd: 1 });
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

async function runInspect(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('inspect', argv);
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one argument: IMAGE');
  const policy = loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy });
  const resources = new ResourcePool();
  try {
    const { report, refusal } = await inspectImage(positionals[0]!, systemContextFrom(options, createLogger(options.debug), resources, policy));
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    // The report shows why; the status still says the image may not be used.
    if (refusal !== undefined) throw new PolicyDeniedError(refusal);
  } finally {
    await resources.close();
  }
  return 0;
}

export async function run(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'experimental-image-proxy': return runProxy(rest);
    case 'serve': return runServe(rest);
    case 'inspect': return runInspect(rest);
    case 'version':
    case '--version':
      process.stdout.write(`layerpipe version ${packageVersion()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${usage()}\n`);
      return command === undefined ? EXIT_USAGE : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

export function main(argv: readonly string[]): void {
  run(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const name = argv[0] as CommandName | undefined;
      process.stderr.write(`layerpipe${name ? ` ${name}` : ''}: ${errorMessage(err)}\n`);
      process.exit(err instanceof UsageError ? EXIT_USAGE : 1);
    },
  );
}
