/**
 * The skopeo-compatible wire: one JSON document per SOCK_SEQPACKET packet, read ends of pipes
 * passed with SCM_RIGHTS. The wire carries no request ids, so replies leave in request order,
 * while the session runs requests (and their transfers) concurrently.
 */
import { errorMessage, InvalidArgumentError, systemCode } from '../../../protocol/errors';
import { MAX_MESSAGE_SIZE } from '../../../protocol/methods';
import { native } from '../../../protocol/seqpacket/native';
import type { Packet, SeqpacketSocket } from '../../../protocol/seqpacket/socket';
import type { Logger } from '../../log';
import type { Session } from '../../service/session';
import { decodeRequest, encodeReply } from './codec';
import type { Delivered } from './delivery';

/** Why the wire stopped serving: Shutdown received, or the client closed the socket. */
export type WireEnd = 'shutdown' | 'eof';

type Outcome = { readonly kind: 'reply'; readonly delivered: Delivered } | { readonly kind: 'shutdown' };

/**
 * Requests read but not yet answered. Past the high mark the socket is not read (the kernel
 * buffers, then the client blocks) until the client has taken replies down to the low mark, so
 * a client that writes and never reads cannot grow the proxy without bound.
 */
const PENDING_HIGH = 256;
const PENDING_LOW = 128;

/** A send that failed because the client is gone: that is the end of the session, not a fault. */
function peerGone(err: unknown): boolean {
  const code = systemCode(err);
  return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ERR_SOCKET_CLOSED';
}

/**
 * Serves the wire on `socket` (which it then owns), starting with `first` when the connection's
 * first packet was already read to choose the wire (server/wires/detect.ts). The socket may read
 * packets longer than MAX_MESSAGE_SIZE: those get the same error reply as a truncated one.
 */
export function serveSkopeoSocket(socket: SeqpacketSocket, session: Session, log: Logger, first?: Packet): Promise<WireEnd> {
  return new Promise<WireEnd>((resolve, reject) => {
    let replies: Promise<void> = Promise.resolve();
    let pending = 0;
    let ended = false;
    const finish = (why: WireEnd): void => {
      if (ended) return;
      ended = true;
      socket.close();
      resolve(why);
    };

    const run = (packet: Packet): { label: string; outcome: Promise<Outcome> } => {
      if (packet.truncated || packet.data.length > MAX_MESSAGE_SIZE) {
        return { label: '?', outcome: Promise.reject(new InvalidArgumentError(`invalid request: message larger than ${MAX_MESSAGE_SIZE} bytes`)) };
      }
      let request;
      try {
        request = decodeRequest(packet.data);
      } catch (err) {
        return { label: '?', outcome: Promise.reject(err) };
      }
      if (log.debugEnabled) log.debug(`request ${request.method} ${JSON.stringify(request.args)}`);
      const { method } = request;
      const outcome = session.call(method, request.args).then(async (result): Promise<Outcome> => {
        if (result.endSession === true) return { kind: 'shutdown' };
        if (result.pending === undefined) return { kind: 'reply', delivered: { value: result.value, pipeid: 0, fds: [] } };
        // Pipes and the copy into them load at the first method returning bytes, not before Initialize's reply.
        const { deliver } = await import('./delivery');
        return { kind: 'reply', delivered: deliver(session, method, result.value, result.pending) };
      });
      return { label: method, outcome };
    };

    const onPacket = (packet: Packet): void => {
      for (const received of packet.fds) native.close(received); // clients send none; drop strays
      if (++pending >= PENDING_HIGH) socket.pause();
      const { label, outcome } = run(packet);
      outcome.catch(() => undefined); // settled in order below
      replies = replies.then(async () => {
        let result: Outcome;
        try {
          result = await outcome;
        } catch (err) {
          if (log.debugEnabled) log.debug(`reply ${label}: error: ${errorMessage(err)}`);
          if (!ended) await socket.send(encodeReply({ error: err }), []);
          return;
        }
        if (result.kind === 'shutdown') {
          log.debug('Shutdown requested');
          finish('shutdown');
          return;
        }
        const { value, pipeid, fds } = result.delivered;
        if (log.debugEnabled) log.debug(`reply ${label}: value ${JSON.stringify(value)} pipeid ${pipeid} fds ${fds.length}`);
        if (ended) {
          for (const unsent of fds) native.close(unsent);
          return;
        }
        await socket.send(encodeReply({ value, pipeid }), fds); // the socket closes the fds
      }).then(() => {
        if (--pending === PENDING_LOW && !ended) socket.resume();
      }).catch((err: unknown) => {
        if (peerGone(err)) finish('eof');
        else if (!ended) reject(err);
      });
    };
    if (first !== undefined) onPacket(first);
    socket.on('packet', onPacket);
    socket.resume();
    socket.on('end', () => finish('eof'));
    socket.on('error', (err: Error) => {
      if (!ended) reject(err);
    });
  });
}
