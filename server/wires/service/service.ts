/**
 * The long-running service: every connection accepted on the listener is a Session of its
 * own, served by the connection's wire (0.2.x or 1.0, told apart by its first packet). All
 * sessions share the one SystemContext (its resources: registry connections, bearer tokens,
 * the manifest cache), and nothing else: a connection that fails or goes away takes only its
 * own images, transfers and FIFOs with it.
 *
 * Stopping: the listener closes (its file is removed) and the sessions keep serving until none
 * holds a transfer any more, or the grace period is over; then every remaining connection is
 * shut down and its session closed.
 */
import { readlinkSync } from 'node:fs';
import { errorMessage } from '../../../protocol/errors';
import { native } from '../../../protocol/seqpacket/native';
import type { SystemContext } from '../../image/types';
import type { Logger } from '../../log';
import { Session } from '../../service/session';
import type { MemoryGuard } from '../../transfer/memory-guard';
import { SessionFifos } from '../../transfer/sinks/fifo';
import { serveConnection } from '../detect';
import type { UnixSeqpacketListener } from './unix-listener';

/** Connections served at once; more are accepted and closed at once, with a warning. */
export const MAX_CONNECTIONS = 1024;
export const DEFAULT_GRACE_MS = 10_000;
/** How often a stopping service looks whether its connections still hold transfers. */
const DRAIN_POLL_MS = 25;
/** After the grace period, how long shut-down connections get to wind down before the service goes anyway. */
const CLOSE_WAIT_MS = 2_000;

export interface ServiceOptions {
  readonly ctx: SystemContext;
  readonly guard: MemoryGuard | undefined;
  readonly log: Logger;
  /** How long transfers in flight may go on after stop() (default DEFAULT_GRACE_MS). */
  readonly graceMs?: number;
  /** How long a FIFO payload waits for its reader (default: SessionFifos'). */
  readonly fifoOpenTimeoutMs?: number;
}

interface Connection {
  readonly id: number;
  readonly fd: number;
  /** "socket:[INODE]": the wire closes `fd` when it stops, and the number may then name another file. */
  readonly identity: string | undefined;
  readonly session: Session;
  done: Promise<void>;
}

/** What an fd of this process refers to ("socket:[123]"), or undefined once it is closed. */
function fdIdentity(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/**
 * Ends the connection under the wire's feet if the fd is still its socket: the wire reads the
 * end and closes it, and the client sees the connection closed. A number that now names
 * another file is left alone.
 */
function shutDownConnection(connection: Connection, log: Logger): void {
  if (connection.identity === undefined || fdIdentity(connection.fd) !== connection.identity) return;
  try {
    native.shutdownSocket(connection.fd);
  } catch (err) {
    log.warn(`connection ${connection.id}: shutdown: ${errorMessage(err)}`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class SeqpacketService {
  private readonly connections = new Map<number, Connection>();
  private nextId = 0;
  private stopping: Promise<void> | undefined;
  private readonly graceMs: number;

  constructor(
    private readonly listener: UnixSeqpacketListener,
    private readonly options: ServiceOptions,
  ) {
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  }

  start(): void {
    this.options.log.debug(`serving on ${this.listener.name}`);
    this.listener.start((fd) => this.accept(fd));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  private accept(fd: number): void {
    const { log } = this.options;
    if (this.stopping !== undefined || this.connections.size >= MAX_CONNECTIONS) {
      if (this.stopping === undefined) log.warn(`refusing a connection: ${MAX_CONNECTIONS} connections are being served`);
      native.close(fd);
      return;
    }
    const id = ++this.nextId;
    const session = new Session({ ctx: this.options.ctx, guard: this.options.guard });
    // Each connection's FIFOs live in a private directory of its own, removed with its session.
    const fifos = new SessionFifos({ owner: session, openTimeoutMs: this.options.fifoOpenTimeoutMs });
    const wire = { fifos };
    log.debug(`connection ${id}: accepted`);
    const connection: Connection = { id, fd, identity: fdIdentity(fd), session, done: Promise.resolve() };
    this.connections.set(id, connection);
    connection.done = Promise.resolve()
      .then(() => serveConnection(fd, session, log, wire))
      .then(
        (why) => log.debug(`connection ${id}: ended (${String(why)})`),
        (err: unknown) => {
          log.warn(`connection ${id}: ${errorMessage(err)}`);
          // A wire that failed may not have closed its socket: the client must not wait on it.
          shutDownConnection(connection, log);
        },
      )
      .then(() => session.close())
      .catch((err: unknown) => log.warn(`connection ${id}: closing its session: ${errorMessage(err)}`))
      .finally(() => {
        fifos.close();
        this.connections.delete(id);
      });
  }

  /**
   * Stops accepting, lets held transfers finish within the grace period, then ends every
   * connection. Resolves once all are closed (or given up on after a short wait). Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  private async drainAndClose(): Promise<void> {
    const { log } = this.options;
    this.listener.close();
    const deadline = Date.now() + this.graceMs;
    // Copying (FinishPipe may already be waiting for it), or copied and not yet collected.
    const busy = (c: Connection): boolean => c.session.activeTransfers > 0 || c.session.heldTransfers > 0;
    while (Date.now() < deadline && [...this.connections.values()].some(busy)) await sleep(DRAIN_POLL_MS);
    const left = [...this.connections.values()];
    if (left.length > 0) log.debug(`stopping: closing ${left.length} connection(s)`);
    for (const connection of left) {
      shutDownConnection(connection, log);
      void connection.session.close();
    }
    await Promise.race([Promise.allSettled(left.map((c) => c.done)), sleep(CLOSE_WAIT_MS)]);
  }
}
