/**
 * The `layerpipe` command. Each command lives in its own module under commands/, loaded only
 * when it runs, so a command pays start-up time for nothing it does not use.
 */
import { errorMessage } from '../../protocol/errors';
import { flagHelp, UsageError, type CommandName } from './flags';
import { packageVersion } from './version';

const EXIT_USAGE = 2;

interface CommandModule {
  run(argv: readonly string[]): Promise<number>;
}

const COMMANDS: Readonly<Record<CommandName, () => Promise<CommandModule>>> = {
  'experimental-image-proxy': () => import('./commands/proxy'),
  serve: () => import('./commands/serve'),
  inspect: () => import('./commands/inspect'),
  copy: () => import('./commands/copy'),
};

function isCommandName(name: string): name is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, name);
}

function usage(): string {
  return [
    'Usage: layerpipe COMMAND [flags]',
    '',
    'Commands:',
    '  experimental-image-proxy   serve the skopeo image-proxy wire, or protocol 1.0, on a SOCK_SEQPACKET socket (fd 0 or --sockfd)',
    '  serve --stdio              serve protocol 1.0 (JSON-RPC 2.0) on stdin/stdout',
    '  serve --listen unix:PATH   serve every client of a SOCK_SEQPACKET unix socket (0.2.x or 1.0 by its first packet)',
    '  serve --listen ws://H:P    serve protocol 1.0 on a token-protected WebSocket (browsers, WebAssembly hosts); repeatable',
    '  inspect IMAGE              show the digest, platform, config, layers, signatures and policy verdict of IMAGE',
    '  copy SRC DEST              copy an image to oci:DIR[:REF], dir:DIR or oci-archive:FILE[:REF], every blob verified',
    '  version                    print the version',
    '',
    'experimental-image-proxy flags:',
    flagHelp('experimental-image-proxy'),
    '',
    'serve flags:',
    flagHelp('serve'),
  ].join('\n');
}

export async function run(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && isCommandName(command)) return (await COMMANDS[command]()).run(rest);
  switch (command) {
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
      const name = argv[0];
      process.stderr.write(`layerpipe${name !== undefined && isCommandName(name) ? ` ${name}` : ''}: ${errorMessage(err)}\n`);
      process.exit(err instanceof UsageError ? EXIT_USAGE : 1);
    },
  );
}
