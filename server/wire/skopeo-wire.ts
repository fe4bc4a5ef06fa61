/**
 * The skopeo-compatible wire: one JSON document per SOCK_SEQPACKET packet, read ends of pipes
 * passed with SCM_RIGHTS. The wire carries no request ids, so replies leave in request order,
 * while the handler is free to run requests (and their transfers) concurrently.
 */
import { MAX_MESSAGE_SIZE, type Reply } from '../../protocol/methods';
import { errorMessage, InvalidArgumentError, wireErrorCode } from '../errors';
import type { HandlerOutcome, ProxyHandler } from '../handler/handler';
import type { Logger } from '../log';
import { native } from '../native';
import { SeqpacketSocket, type Packet } from '../native/seqpacket-socket';

/** Why the wire stopped serving: Shutdown received, or the client closed the socket. */
export type WireEnd = 'shutdown' | 'eof';

interface DecodedRequest {
  readonly method: string;
  readonly args: readonly unknown[];
}

/** Decodes a request packet the way skopeo does: an object with a method and an args array. */
export function decodeRequest(data: Buffer): DecodedRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`invalid request: ${errorMessage(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('invalid request: expected a JSON object');
  }
  const { method, args } = parsed as { method?: unknown; args?: unknown };
  if (method !== undefined && typeof method !== 'string') throw new InvalidArgumentError('invalid request: "method" must be a string');
  if (args !== undefined && args !== null && !Array.isArray(args)) throw new InvalidArgumentError('invalid request: "args" must be an array');
  return { method: method ?? '', args: (args as unknown[] | null | undefined) ?? [] };
}

function encodeReply(outcome: { value: unknown; pipeid: number } | { error: unknown }): Buffer {
  const reply: Reply = 'error' in outcome
    ? { success: false, value: null, pipeid: 0, error_code: wireErrorCode(outcome.error), error: errorMessage(outcome.error) }
    : { success: true, value: outcome.value ?? null, pipeid: outcome.pipeid, error_code: '', error: '' };
  return Buffer.from(JSON.stringify(reply));
}

export function serveSkopeoWire(fd: number, handler: ProxyHandler, log: Logger): Promise<WireEnd> {
  return new Promise<WireEnd>((resolve, reject) => {
    const socket = new SeqpacketSocket(fd, MAX_MESSAGE_SIZE);
    let replies: Promise<void> = Promise.resolve();
    let ended = false;
    const finish = (why: WireEnd) => {
      if (ended) return;
      ended = true;
      resolve(why);
    };

    socket.on('packet', (packet: Packet) => {
      for (const received of packet.fds) native.close(received); // clients send none; drop strays
      let outcome: Promise<HandlerOutcome>;
      let label = '?';
      if (packet.truncated) {
        outcome = Promise.reject(new InvalidArgumentError(`invalid request: message larger than ${MAX_MESSAGE_SIZE} bytes`));
      } else {
        try {
          const request = decodeRequest(packet.data);
          label = request.method;
          if (log.debugEnabled) log.debug(`request ${request.method} ${JSON.stringify(request.args)}`);
          outcome = handler.handle(request.method, request.args);
        } catch (err) {
          outcome = Promise.reject(err);
        }
      }
      outcome.catch(() => {}); // settled in order below
      replies = replies.then(async () => {
        let result: HandlerOutcome;
        try {
          result = await outcome;
        } catch (err) {
          if (log.debugEnabled) log.debug(`reply ${label}: error: ${errorMessage(err)}`);
          await socket.send(encodeReply({ error: err }), []);
          return;
        }
        if (result.kind === 'shutdown') {
          log.debug('Shutdown requested');
          finish('shutdown');
          return;
        }
        const { value, pipeid, fds } = result.reply;
        if (log.debugEnabled) log.debug(`reply ${label}: value ${JSON.stringify(value)} pipeid ${pipeid} fds ${fds.length}`);
        await socket.send(encodeReply({ value, pipeid }), fds); // the socket closes the fds
      }).catch((err: unknown) => {
        if (!ended) reject(err);
      });
    });
    socket.on('end', () => finish('eof'));
    socket.on('error', (err: Error) => {
      if (!ended) reject(err);
    });
  });
}
