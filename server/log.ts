/** Diagnostics on stderr. Only --debug output goes through here; it never carries credentials. */

/** A registry request about to be tried again, for a command that shows each on stderr (Logger.retrying). */
export interface RetryNotice {
  /** What was being done ("fetching manifest …"). */
  readonly what: string;
  /** Why the last try failed: a network error or a status. */
  readonly reason: string;
  /** The try about to be made (2 for the first retry), and how many there may be. */
  readonly attempt: number;
  readonly attempts: number;
  readonly delayMs: number;
}

/** A notice as one line: "retrying in 1s (2/5): connect ECONNREFUSED 127.0.0.1:5000 (fetching manifest …)". */
export function retryNoticeText(n: RetryNotice): string {
  const delay = n.delayMs % 1000 === 0 ? `${n.delayMs / 1000}s` : `${n.delayMs}ms`;
  return `retrying in ${delay} (${n.attempt}/${n.attempts}): ${n.reason} (${n.what})`;
}

export interface Logger {
  readonly debugEnabled: boolean;
  debug(message: string): void;
  warn(message: string): void;
  /**
   * A registry request is about to be tried again. Commands run by a person (inspect, blob,
   * list-tags) show each on stderr; servers leave it to --debug. Optional, so a logger that
   * only collects debug lines need not have it.
   */
  retrying?(notice: RetryNotice): void;
}

export interface LoggerOptions {
  /** Print a line on stderr for every retry (the CLI's one-shot commands). */
  readonly showRetries?: boolean;
}

export function createLogger(debugEnabled: boolean, options: LoggerOptions = {}): Logger {
  return {
    debugEnabled,
    debug(message: string): void {
      if (debugEnabled) process.stderr.write(`layerpipe[${process.pid}] debug: ${message}\n`);
    },
    warn(message: string): void {
      process.stderr.write(`layerpipe[${process.pid}] warning: ${message}\n`);
    },
    ...(options.showRetries === true ? { retrying: (notice: RetryNotice) => process.stderr.write(`layerpipe: ${retryNoticeText(notice)}\n`) } : {}),
  };
}
