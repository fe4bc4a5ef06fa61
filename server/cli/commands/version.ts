/** `layerpipe version`. */
import { parseFlags, UsageError } from '../flags';
import { packageVersion } from '../../version';

export async function run(argv: readonly string[]): Promise<number> {
  const { positionals } = parseFlags('version', argv);
  if (positionals.length > 0) throw new UsageError(`version takes no arguments, got ${JSON.stringify(positionals)}`);
  process.stdout.write(`layerpipe version ${packageVersion()}\n`);
  return 0;
}
