/** The `layerpipe` command: experimental-image-proxy (the skopeo-compatible server) and inspect. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../errors';
import { ProxyHandler } from '../handler/handler';
import { createLogger, type Logger } from '../log';
import { serveSkopeoWire } from '../wire/skopeo-wire';
import { flagHelp, parseFlags, systemContextFrom, UsageError, type CommandName } from './flags';
import { inspectImage } from './inspect';

const EXIT_USAGE = 2;

/** --debug also logs registry requests (redacted); loads the docker transport only then. */
function enableRegistryDebug(log: Logger): void {
  if (!log.debugEnabled) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('../transports/docker') as typeof import('../transports/docker')).setRegistryLogger(log);
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  return [
    'Usage: layerpipe COMMAND [flags]',
    '',
    'Commands:',
    '  experimental-image-proxy   serve the skopeo image-proxy wire on a SOCK_SEQPACKET socket (fd 0 or --sockfd)',
    '  inspect IMAGE              show the digest, platform, config and layers of IMAGE',
    '  version                    print the version',
    '',
    'experimental-image-proxy flags:',
    flagHelp('experimental-image-proxy'),
  ].join('\n');
}

async function runProxy(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('experimental-image-proxy', argv);
  if (positionals.length > 0) throw new UsageError(`experimental-image-proxy takes no arguments, got ${JSON.stringify(positionals)}`);
  const log = createLogger(options.debug);
  enableRegistryDebug(log);
  const handler = new ProxyHandler(systemContextFrom(options));
  const why = await serveSkopeoWire(options.sockfd, handler, log);
  log.debug(`exiting: ${why}`);
  return 0;
}

async function runInspect(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('inspect', argv);
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one argument: IMAGE');
  enableRegistryDebug(createLogger(options.debug));
  const report = await inspectImage(positionals[0]!, systemContextFrom(options));
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  return 0;
}

export async function run(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'experimental-image-proxy': return runProxy(rest);
    case 'inspect': return runInspect(rest);
    case 'version':
    case '--version':
      process.stdout.write(`layerpipe version ${packageVersion()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${usage()}\n`);
      return command === undefined ? EXIT_USAGE : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

export function main(argv: readonly string[]): void {
  run(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const name = argv[0] as CommandName | undefined;
      process.stderr.write(`layerpipe${name ? ` ${name}` : ''}: ${errorMessage(err)}\n`);
      process.exit(err instanceof UsageError ? EXIT_USAGE : 1);
    },
  );
}
