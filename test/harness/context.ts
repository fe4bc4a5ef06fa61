/**
 * The one SystemContext builder for in-process tests: the command line's defaults (read with
 * an empty environment, so the machine's settings stay out), a silent logger, and a resource
 * pool of its own, so two tests never share registry clients or connections by accident.
 */
import os from 'node:os';
import { defaultOptions, systemContextFrom } from '../../server/cli/flags';
import type { RegistryOptions, SystemContext } from '../../server/image/types';
import { createLogger } from '../../server/log';
import { ACCEPT_ANYTHING } from '../../server/policy/load';
import { ResourcePool } from '../../server/service/resources';

export interface TestContextOptions extends Partial<Omit<SystemContext, 'registry' | 'resources'>> {
  readonly registry?: Partial<RegistryOptions>;
}

export function testContext(options: TestContextOptions = {}): SystemContext {
  const { registry, ...rest } = options;
  const defaults = systemContextFrom(defaultOptions({}), createLogger(false), new ResourcePool(), ACCEPT_ANYTHING);
  return { ...defaults, tmpDir: os.tmpdir(), ...rest, registry: { ...defaults.registry, ...registry } };
}

/** Closes what the context's pool made (registry clients and their connections). */
export function closeTestContext(ctx: SystemContext): Promise<void> {
  return (ctx.resources as ResourcePool).close();
}

/** A signal that never aborts, for calls whose test does not cancel them. */
export function neverAborted(): AbortSignal {
  return new AbortController().signal;
}
