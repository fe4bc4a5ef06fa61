/** Protocol 1.0 on its two framings: a SOCK_SEQPACKET connection, and a byte stream pair (stdio). */
import type { Readable, Writable } from 'node:stream';
import { MAX_STREAM_CHUNK } from '../../../protocol/jsonrpc';
import { native } from '../../../protocol/seqpacket/native';
import type { Packet, SeqpacketSocket } from '../../../protocol/seqpacket/socket';
import type { Logger } from '../../log';
import type { Session } from '../../service/session';
import type { WireEnd } from '../skopeo/wire';
import { serveJsonRpc, type JsonRpcWireOptions } from './connection';
import { TransferHandouts } from './handouts';
import { SeqpacketMessageReader, SeqpacketMessageWriter, widenSendBuffer } from './seqpacket';
import { ContentLengthMessageReader, StdioMessageWriter } from './stdio';

/** Serves 1.0 on `socket` (which it then owns), starting with `first`, the packet that chose the wire. */
export function serveJsonRpcSeqpacket(socket: SeqpacketSocket, first: Packet | undefined, session: Session, log: Logger, options: JsonRpcWireOptions): Promise<WireEnd> {
  const handouts = new TransferHandouts();
  const writer = new SeqpacketMessageWriter(socket, handouts);
  const refuse = (response: Parameters<SeqpacketMessageWriter['write']>[0]): void => void writer.write(response).catch(() => undefined);
  const reader = new SeqpacketMessageReader(socket, first, refuse, log);
  const streamChunk = widenSendBuffer(socket, log);
  return serveJsonRpc({ reader, writer, handouts, payloads: ['fd', 'stream'], streamChunk, answersAfterEnd: false, close: () => socket.close() }, session, log, options);
}

/**
 * A pipe's default 64 KiB holds a fifth of one `transfer/data`: each message then leaves in
 * several writes, each waiting for the client to read. 1 MiB (the unprivileged maximum) takes a
 * message whole. A stream socket (what Node's and libuv's spawn give a child for stdout) gets
 * the same send buffer, as far as net.core.wmem_max allows. Anything else (a file, a terminal)
 * is left as it is.
 */
const STDIO_PIPE_BYTES = 1024 * 1024;

function widenOutputPipe(output: Writable, log: Logger): void {
  // fs streams carry `fd`; a net.Socket opened on an fd keeps it on its handle.
  const fd = (output as { fd?: unknown }).fd ?? (output as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number') return;
  try {
    native.setPipeSize(fd, STDIO_PIPE_BYTES);
    return;
  } catch {
    // Not a pipe: perhaps a socket.
  }
  try {
    native.setSendBuffer(fd, STDIO_PIPE_BYTES);
  } catch (err) {
    log.debug(`stdout keeps its buffer size: ${(err as Error).message}`);
  }
}

/** Serves 1.0 with Content-Length framing on `input`/`output` (stdin/stdout): stream payloads, or FIFOs when offered. */
export function serveJsonRpcStdio(input: Readable, output: Writable, session: Session, log: Logger, options: JsonRpcWireOptions): Promise<WireEnd> {
  const handouts = new TransferHandouts();
  widenOutputPipe(output, log);
  const writer = new StdioMessageWriter(output, handouts);
  const refuse = (response: Parameters<StdioMessageWriter['write']>[0]): void => void writer.write(response).catch(() => undefined);
  const reader = new ContentLengthMessageReader(input, refuse, log);
  // Unasked, stdio gets `stream`: its client may be on another machine (ssh), where a FIFO path means nothing.
  return serveJsonRpc({ reader, writer, handouts, payloads: ['stream'], defaultPayloads: ['stream', 'fifo'], streamChunk: MAX_STREAM_CHUNK, answersAfterEnd: true, close: () => input.pause() }, session, log, options);
}
