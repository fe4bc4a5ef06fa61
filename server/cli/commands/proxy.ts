/** `layerpipe experimental-image-proxy`: the skopeo-compatible command; a first packet in JSON-RPC 2.0 gets protocol 1.0 instead. */
import { fstatSync } from 'node:fs';
import { systemCode } from '../../../protocol/errors';
import { native, type SocketType } from '../../../protocol/seqpacket/native';
import { serveConnection } from '../../wires/detect';
import { parseFlags, UsageError } from '../flags';
import { serveOneSession } from '../one-session';

/**
 * What `fd` is, in words, when it is not a SOCK_SEQPACKET socket; undefined when it is one. The
 * socket's type is asked first, with no fstatSync (whose first call costs a start ~0.3 ms); only
 * a descriptor that is no socket (or not open) is fstat'ed, to say what it is.
 */
function notSeqpacket(fd: number): string | undefined {
  let type: SocketType;
  try {
    type = native.socketType(fd);
  } catch {
    return notASocket(fd);
  }
  return type === 'seqpacket' ? undefined : `a ${type === 'other' ? 'non-SEQPACKET' : `SOCK_${type.toUpperCase()}`} socket`;
}

/** What `fd`, for which the socket's type could not be asked, is. */
function notASocket(fd: number): string {
  let stat;
  try {
    stat = fstatSync(fd);
  } catch (err) {
    return systemCode(err) === 'EBADF' ? 'not open' : `unusable (${systemCode(err) ?? String(err)})`;
  }
  // node:tty (and node:net, streams with it) loads only for this error message, not at every start.
  if ((require('node:tty') as typeof import('node:tty')).isatty(fd)) return 'a terminal';
  if (stat.isFIFO()) return 'a pipe';
  if (stat.isCharacterDevice()) return 'a character device (such as /dev/null)';
  if (stat.isFile()) return 'a regular file';
  if (stat.isDirectory()) return 'a directory';
  return 'a descriptor of another kind (an eventfd, an epoll instance…)';
}

/** The proxy serves only a SOCK_SEQPACKET socket; anything else is a usage error, said plainly. */
function requireSeqpacket(fd: number): void {
  const what = notSeqpacket(fd);
  if (what === undefined) return;
  throw new UsageError(
    `fd ${fd} is ${what}, not a SOCK_SEQPACKET socket. This command is started by a client program, which passes `
    + 'it one end of a SOCK_SEQPACKET socketpair(2) as fd 0 or with --sockfd N (the Python, Rust and TypeScript clients in clients/ do); '
    + 'it is not run by hand. For a command line, see layerpipe inspect, blob, list-tags or serve --stdio.',
  );
}

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('experimental-image-proxy', argv);
  if (positionals.length > 0) throw new UsageError(`experimental-image-proxy takes no arguments, got ${JSON.stringify(positionals)}`);
  // After the policy is loaded (as skopeo reports a bad policy first), before anything is read.
  return serveOneSession('experimental-image-proxy', options, ({ log, session, wire }) => {
    requireSeqpacket(options.sockfd);
    return serveConnection(options.sockfd, session, log, wire);
  });
}
