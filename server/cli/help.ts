/** What `layerpipe --help` and `layerpipe COMMAND --help` print. */
import { flagsFor, type CommandName, type FlagSpec } from './flags';

interface CommandUsage {
  /** The arguments after the command name. */
  readonly synopsis: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Lines shown under the usage line of the command's own help. */
  readonly details?: readonly string[];
}

const USAGE: Readonly<Record<CommandName, CommandUsage>> = {
  'experimental-image-proxy': {
    synopsis: '[--sockfd N] [flags]',
    summary: 'serve the skopeo image-proxy wire, or protocol 1.0, on a SOCK_SEQPACKET socket (fd 0 or --sockfd)',
    details: ['Started by a client program, over one end of a SOCK_SEQPACKET socketpair; not run by hand.'],
  },
  serve: {
    synopsis: '--stdio | --listen unix:PATH | --listen ws://HOST:PORT [flags]',
    summary: 'serve protocol 1.0 on stdin/stdout, or every client of a unix socket or WebSocket',
  },
  inspect: {
    synopsis: '[flags] IMAGE',
    summary: 'print what `skopeo inspect` prints about IMAGE (--signatures adds the policy verdict)',
    details: ['IMAGE is TRANSPORT:REFERENCE, e.g. oci:DIR:TAG, dir:DIR, oci-archive:FILE, docker-archive:FILE, docker://HOST/REPO:TAG.'],
  },
  blob: {
    synopsis: '[flags] IMAGE DIGEST',
    summary: 'write one blob of IMAGE to stdout or -o FILE, verified against DIGEST',
    details: ['A blob whose bytes do not match DIGEST fails with exit status 1 (and no FILE is left).'],
  },
  'list-tags': {
    synopsis: '[flags] docker://[HOST/]REPO | docker-archive:FILE',
    summary: "print a repository's tags as `skopeo list-tags` does",
  },
  copy: {
    synopsis: '[flags] SRC DEST',
    summary: 'copy an image to oci:DIR[:REF], dir:DIR or oci-archive:FILE[:REF], every blob verified',
    details: ['SRC is any image layerpipe reads; an interrupted copy run again continues where it stopped.'],
  },
  version: { synopsis: '', summary: 'print the version' },
};

function usageOf(command: CommandName): CommandUsage {
  return USAGE[command];
}

function flagLine(f: FlagSpec): string {
  const names = `${f.short !== undefined ? `-${f.short}, ` : '    '}--${f.name}${f.kind === 'bool' ? '' : ' VALUE'}`;
  return `  ${names.padEnd(34)}${f.refused !== undefined ? `(refused: ${f.refused})` : f.help}`;
}

/** `layerpipe COMMAND --help`. */
export function commandHelp(command: CommandName): string {
  const usage = usageOf(command);
  const flags = flagsFor(command);
  return [
    `Usage: layerpipe ${command}${usage.synopsis === '' ? '' : ` ${usage.synopsis}`}`,
    '',
    `${usage.summary[0]!.toUpperCase()}${usage.summary.slice(1)}.`,
    ...(usage.details ?? []),
    '',
    'Flags:',
    ...flags.map(flagLine),
    `  ${'-h, --help'.padEnd(34)}print this help`,
  ].join('\n');
}

/** `layerpipe --help`. */
export function mainHelp(commands: readonly CommandName[]): string {
  return [
    'Usage: layerpipe COMMAND [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.padEnd(26)} ${usageOf(c).summary}`),
    '',
    'Run `layerpipe COMMAND --help` for the flags of a command.',
  ].join('\n');
}
