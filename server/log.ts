/** Diagnostics on stderr. Only --debug output goes through here; it never carries credentials. */
export interface Logger {
  readonly debugEnabled: boolean;
  debug(message: string): void;
  warn(message: string): void;
}

export function createLogger(debugEnabled: boolean): Logger {
  return {
    debugEnabled,
    debug(message: string): void {
      if (debugEnabled) process.stderr.write(`layerpipe[${process.pid}] debug: ${message}\n`);
    },
    warn(message: string): void {
      process.stderr.write(`layerpipe[${process.pid}] warning: ${message}\n`);
    },
  };
}
