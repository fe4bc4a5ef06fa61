/** `layerpipe inspect IMAGE`. */
import { PolicyDeniedError } from '../../../protocol/errors';
import { createLogger } from '../../log';
import { loadPolicy } from '../../policy/load';
import { ResourcePool } from '../../service/resources';
import { parseFlags, systemContextFrom, UsageError } from '../flags';
import { inspectImage } from '../inspect';

export async function run(argv: readonly string[]): Promise<number> {
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
