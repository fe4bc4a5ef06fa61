/**
 * The `layerpipe` command. Each command lives in its own module under commands/, loaded only
 * when it runs, so a command pays start-up time for nothing it does not use; the help texts
 * (help.ts) load only when printed.
 */
import { errorMessage } from '../../protocol/errors';
import { HelpRequest, UsageError, type CommandName } from './flags';

const EXIT_USAGE = 2;

interface CommandModule {
  run(argv: readonly string[]): Promise<number>;
}

const COMMANDS: Readonly<Record<CommandName, () => Promise<CommandModule>>> = {
  'experimental-image-proxy': () => import('./commands/proxy'),
  serve: () => import('./commands/serve'),
  inspect: () => import('./commands/inspect'),
  blob: () => import('./commands/blob'),
  'list-tags': () => import('./commands/list-tags'),
  copy: () => import('./commands/copy'),
  version: () => import('./commands/version'),
};

function isCommandName(name: string): name is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, name);
}

export async function run(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && isCommandName(command)) return (await COMMANDS[command]()).run(rest);
  switch (command) {
    case '--version':
    case '-v':
      return (await COMMANDS.version()).run(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h': {
      const topic = rest[0];
      if (command === 'help' && topic !== undefined) {
        if (!isCommandName(topic)) throw new UsageError(`unknown command ${JSON.stringify(topic)}`);
        throw new HelpRequest(topic);
      }
      const out = command === undefined ? process.stderr : process.stdout;
      const { mainHelp } = await import('./help');
      out.write(`${mainHelp(Object.keys(COMMANDS) as CommandName[])}\n`);
      return command === undefined ? EXIT_USAGE : 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

export function main(argv: readonly string[]): void {
  run(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof HelpRequest) {
        void import('./help').then(({ commandHelp }) => {
          process.stdout.write(`${commandHelp(err.command)}\n`);
          process.exit(0);
        });
        return;
      }
      const name = argv[0];
      const command = name !== undefined && isCommandName(name) ? name : undefined;
      process.stderr.write(`layerpipe${command !== undefined ? ` ${command}` : ''}: ${errorMessage(err)}\n`);
      if (err instanceof UsageError) process.stderr.write(`Run 'layerpipe ${command !== undefined ? `${command} ` : ''}--help' for usage.\n`);
      process.exit(err instanceof UsageError ? EXIT_USAGE : 1);
    },
  );
}
