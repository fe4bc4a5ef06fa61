/** One session served on one connection (experimental-image-proxy, serve --stdio). */
import { loadPolicy } from '../policy/load';
import { createLogger, type Logger } from '../log';
import { ResourcePool } from '../service/resources';
import { Session } from '../service/session';
import { MemoryGuard } from '../transfer/memory-guard';
import { SessionFifos } from '../transfer/sinks/fifo';
import type { JsonRpcWireOptions, WireEnd } from '../wires/detect';
import { systemContextFrom, type CommandName, type ProxyOptions } from './flags';

export interface Served {
  readonly log: Logger;
  readonly session: Session;
  readonly wire: JsonRpcWireOptions;
}

/**
 * Runs one session with the command's flags: the policy is read before anything is served,
 * a signal ends the session as EOF would (transfers stop, files and connections are released),
 * and the session and its resources are closed however serving ends.
 */
export async function serveOneSession(command: CommandName, options: ProxyOptions, serve: (served: Served) => Promise<WireEnd>): Promise<number> {
  const policy = await loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy });
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
    const fifos = new SessionFifos({ owner: session, openTimeoutMs: options.fifoOpenTimeoutMs });
    const why = await serve({ log, session, wire: { fifos } });
    log.debug(`${command} exiting: ${why}`);
  } finally {
    await session.close();
    await resources.close();
  }
  return 0;
}
