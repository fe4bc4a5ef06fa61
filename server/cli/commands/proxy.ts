/** `layerpipe experimental-image-proxy`: the skopeo-compatible command; a first packet in JSON-RPC 2.0 gets protocol 1.0 instead. */
import { serveConnection } from '../../wires/detect';
import { parseFlags, UsageError } from '../flags';
import { serveOneSession } from '../one-session';

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('experimental-image-proxy', argv);
  if (positionals.length > 0) throw new UsageError(`experimental-image-proxy takes no arguments, got ${JSON.stringify(positionals)}`);
  return serveOneSession('experimental-image-proxy', options, ({ log, session, wire }) => serveConnection(options.sockfd, session, log, wire));
}
