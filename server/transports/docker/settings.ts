/**
 * The registry client's settings, all from the SystemContext: the User-Agent, the tuning
 * (stall timeout, tries, backoff; read from the environment once, in server/cli/flags.ts), the
 * --command-timeout and the logger.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { SystemContext } from '../../image/types';
import type { ClientSettings } from './client';

const MAX_RETRY_DELAY_MS = 30_000;

/**
 * The version of the installed layerpipe. Read once and kept for the process: the package.json
 * next to the running code cannot change under it, and every context would read the same
 * answer, so this memo is not state any caller could observe or need to reset.
 */
let installedVersion: string | undefined;

/** layerpipe's version from package.json (found upwards from this file, in the tree or in dist/). */
export function layerpipeVersion(): string {
  installedVersion ??= readVersion();
  return installedVersion;
}

function readVersion(): string {
  for (let dir = __dirname, i = 0; i < 6; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'layerpipe' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here; look one directory up
    }
  }
  return 'unknown';
}

export function userAgent(prefix: string): string {
  const own = `layerpipe/${layerpipeVersion()}`;
  return prefix === '' ? own : `${prefix} ${own}`;
}

export function clientSettings(ctx: SystemContext): ClientSettings {
  const opts = ctx.registry;
  return {
    userAgent: userAgent(ctx.userAgentPrefix),
    stallTimeoutMs: Math.max(1, opts.stallTimeoutMs),
    attempts: Math.max(1, opts.retryAttempts),
    retryDelayMs: Math.max(0, opts.retryDelayMs),
    maxRetryDelayMs: MAX_RETRY_DELAY_MS,
    operationTimeoutMs: opts.commandTimeoutMs,
    parallelRanges: opts.parallelRanges,
    logger: ctx.log,
  };
}
