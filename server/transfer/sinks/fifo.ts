/**
 * FIFO sinks: the consumer gets a path to open for reading, in a private directory (0700) of
 * the session's own, made on first use and removed with everything in it when the session
 * closes. A FIFO leaves the filesystem as soon as both ends are open, or when its transfer
 * ends first. The write side is fifo-sink.ts (openFifoSink), part of the 1.0 wire, which alone
 * offers FIFOs: node:stream, which it extends, then loads with that wire, not at every start.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { CancelledError } from '../../../protocol/errors';
import { native } from '../../../protocol/seqpacket/native';

/** How long a FIFO waits for its reader unless told otherwise. */
export const DEFAULT_FIFO_OPEN_TIMEOUT_MS = 60_000;

export interface SessionFifosOptions {
  /** Where the private directory is made; default: $XDG_RUNTIME_DIR when usable, else os.tmpdir(). */
  readonly parent?: string;
  /** How long each FIFO waits for a reader; default DEFAULT_FIFO_OPEN_TIMEOUT_MS. */
  readonly openTimeoutMs?: number;
  /**
   * The session (anything with its signal): when its signal aborts, the directory is removed and
   * no FIFO is made any more. The signal is asked for at the first FIFO, not before: making it
   * costs a proxy's start the AbortController module.
   */
  readonly owner?: { readonly signal: AbortSignal };
}

/** $XDG_RUNTIME_DIR when it is a directory of ours we can write to (the XDG spec's conditions), else the temp directory. */
export function privateParentDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime !== undefined && path.isAbsolute(runtime)) {
    try {
      const st = statSync(runtime);
      if (st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o700) === 0o700) return runtime;
    } catch {
      // Missing or unreadable: the temp directory does as well.
    }
  }
  return (require('node:os') as typeof import('node:os')).tmpdir();
}

/** One session's FIFOs, in one private directory. */
export class SessionFifos {
  private directory: string | undefined;
  private nextId = 0;
  private closed = false;
  /** How long each FIFO waits for its reader. */
  readonly openTimeoutMs: number;

  constructor(private readonly options: SessionFifosOptions = {}) {
    this.openTimeoutMs = options.openTimeoutMs ?? DEFAULT_FIFO_OPEN_TIMEOUT_MS;
  }

  /** The private directory, once a FIFO has been made. */
  get directoryPath(): string | undefined {
    return this.directory;
  }

  /** A new FIFO (mode 0600) for one transfer: the path the client opens (fifo-sink.ts writes it). */
  makeFifo(): string {
    const signal = this.options.owner?.signal;
    if (this.closed || signal?.aborted === true) throw new CancelledError('session closed');
    if (this.directory === undefined) {
      // mkdtemp makes the directory 0700 whatever the umask.
      this.directory = mkdtempSync(path.join(this.options.parent ?? privateParentDirectory(), 'layerpipe-fifo-'));
      // Listened for from the first FIFO on: a session without FIFOs has nothing to remove.
      signal?.addEventListener('abort', () => this.close(), { once: true });
    }
    const fifoPath = path.join(this.directory, `transfer-${++this.nextId}`);
    native.mkfifo(fifoPath, 0o600);
    return fifoPath;
  }

  /** Removes the directory and every FIFO left in it; sinks already open keep their fds. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.directory === undefined) return;
    rmSync(this.directory, { recursive: true, force: true });
    this.directory = undefined;
  }
}

