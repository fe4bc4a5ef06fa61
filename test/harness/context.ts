/**
 * The one SystemContext builder for in-process tests: every setting at its default, the
 * registry tuning fast enough for tests, a silent logger and a resource pool of its own, so two
 * tests never share registry clients or connections by accident.
 */
import os from 'node:os';
import type { RegistryOptions, SystemContext } from '../../server/image/types';
import { createLogger } from '../../server/log';
import { ResourcePool } from '../../server/service/resources';

export interface TestContextOptions extends Partial<Omit<SystemContext, 'registry' | 'resources'>> {
  readonly registry?: Partial<RegistryOptions>;
}

export function testContext(options: TestContextOptions = {}): SystemContext {
  const { registry, ...rest } = options;
  return {
    osChoice: '',
    architectureChoice: '',
    variantChoice: '',
    userAgentPrefix: '',
    tmpDir: os.tmpdir(),
    log: createLogger(false),
    ...rest,
    resources: new ResourcePool(),
    registry: {
      tlsVerify: undefined,
      certDir: undefined,
      authFile: undefined,
      credentials: undefined,
      registryToken: undefined,
      noCreds: false,
      registriesConf: undefined,
      commandTimeoutMs: undefined,
      stallTimeoutMs: 30_000,
      retryAttempts: 5,
      retryDelayMs: 500,
      ...registry,
    },
  };
}

/** Closes what the context's pool made (registry clients and their connections). */
export function closeTestContext(ctx: SystemContext): Promise<void> {
  return (ctx.resources as ResourcePool).close();
}

/** A signal that never aborts, for calls whose test does not cancel them. */
export function neverAborted(): AbortSignal {
  return new AbortController().signal;
}
