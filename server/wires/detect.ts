/**
 * One SOCK_SEQPACKET connection, either wire: the first packet decides. A JSON-RPC 2.0 message
 * (an object, or a batch, with "jsonrpc": "2.0") means protocol 1.0; anything else is the skopeo
 * 0.2.x wire, which then answers that packet exactly as it always did. Used by
 * `experimental-image-proxy` (one connection) and by `serve --listen` (one per client).
 */
import { isJsonRpcMessage, MAX_MESSAGE_SIZE_1 } from '../../protocol/jsonrpc-message';
import { SeqpacketSocket, type Packet } from '../../protocol/seqpacket/socket';
import type { Logger } from '../log';
import type { Session } from '../service/session';
import type { JsonRpcWireOptions } from './jsonrpc/connection';
import { serveSkopeoSocket, type WireEnd } from './skopeo/wire';

export type { JsonRpcWireOptions } from './jsonrpc/connection';
export type { WireEnd } from './skopeo/wire';

/** Text that cannot be parsed (cut at the size limit, or broken) still names 1.0 when it says so. */
const JSONRPC_MEMBER = /"jsonrpc"\s*:\s*"2\.0"/;

function speaksJsonRpc(packet: Packet): boolean {
  const text = packet.data.toString('utf8');
  if (!packet.truncated) {
    try {
      return isJsonRpcMessage(JSON.parse(text));
    } catch {
      // Not JSON: fall through to the textual test.
    }
  }
  return JSONRPC_MEMBER.test(text);
}

/** The connection's first packet, read with the socket paused right after; undefined at end of stream. */
function firstPacket(socket: SeqpacketSocket): Promise<Packet | undefined> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      socket.off('packet', onPacket);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    const onPacket = (packet: Packet): void => {
      socket.pause(); // no packet may arrive before the wire listens
      done();
      resolve(packet);
    };
    const onEnd = (): void => {
      done();
      resolve(undefined);
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    socket.on('packet', onPacket);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
}

/**
 * Serves the connection on `fd` (a connected SOCK_SEQPACKET socket, owned from here on) until
 * the client closes it or sends Shutdown. The caller closes `session` afterwards.
 */
export async function serveConnection(fd: number, session: Session, log: Logger, options: JsonRpcWireOptions): Promise<WireEnd> {
  const socket = new SeqpacketSocket(fd, MAX_MESSAGE_SIZE_1);
  let first: Packet | undefined;
  try {
    first = await firstPacket(socket);
  } catch (err) {
    socket.close();
    throw err;
  }
  if (first === undefined) {
    socket.close();
    return 'eof';
  }
  if (speaksJsonRpc(first)) {
    log.debug('first packet is JSON-RPC 2.0: serving protocol 1.0');
    // Loaded only now: a 0.2.x client never pays for vscode-jsonrpc and the 1.0 methods.
    const { serveJsonRpcSeqpacket } = await import('./jsonrpc/serve');
    return serveJsonRpcSeqpacket(socket, first, session, log, options);
  }
  return serveSkopeoSocket(socket, session, log, first);
}
