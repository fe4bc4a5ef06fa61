/**
 * A client that floods the proxy with small requests and reads no replies, then reads them
 * all: the proxy's RSS is sampled while it floods, and every reply is checked to answer its
 * request, in order. Requests are GetLayerInfo on image ids 1, 2, 3... that do not exist, so
 * reply K must say "no image K".
 */
import { native } from '../../protocol/seqpacket/native';
import type { StressProxy } from './proxy-process';

export interface FloodOptions {
  readonly requests: number;
  /** Stop flooding once the proxy's RSS passes this: the property is already broken. */
  readonly rssLimitMiB: number;
  /** Sends refused this long in a row mean the proxy stopped reading (backpressure). */
  readonly blockedMs: number;
  /** Give up reading when no reply comes for this long. */
  readonly idleMs: number;
}

export interface FloodResult {
  /** Requests sent before the client started reading. */
  readonly sentUnread: number;
  /** The proxy applied backpressure (sends refused for blockedMs) before all were sent. */
  readonly backpressure: boolean;
  readonly sent: number;
  readonly peakRssMiB: number;
  /** The proxy's RSS when the client started reading. */
  readonly rssAtReadMiB: number;
  readonly replies: number;
  /** First reply that did not answer its request, if any. */
  readonly firstOutOfOrder: string | undefined;
  readonly floodMs: number;
  readonly readMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const request = (k: number): Buffer => Buffer.from(`{"method":"GetLayerInfo","args":[${k}]}`);

/** Sends one request if the socket takes it. */
function trySend(fd: number, k: number): boolean {
  return native.sendPacket(fd, request(k), []);
}

export async function flood(proxy: StressProxy, options: FloodOptions): Promise<FloodResult> {
  proxy.pauseReplies();
  const fd = proxy.clientFd;
  let sent = 0;
  let peak = 0;
  let blockedSince = 0;
  let backpressure = false;
  const t0 = Date.now();
  while (sent < options.requests) {
    if (trySend(fd, sent + 1)) {
      sent++;
      blockedSince = 0;
      if (sent % 2000 === 0) {
        peak = Math.max(peak, proxy.memory().rssMiB);
        if (peak > options.rssLimitMiB) break;
      }
      continue;
    }
    if (blockedSince === 0) blockedSince = Date.now();
    if (Date.now() - blockedSince > options.blockedMs) {
      backpressure = true;
      break;
    }
    await sleep(1);
  }
  const sentUnread = sent;
  const rssAtReadMiB = proxy.memory().rssMiB;
  peak = Math.max(peak, rssAtReadMiB);
  const floodMs = Date.now() - t0;

  // Read every reply, sending the rest of the requests as the proxy takes them (unless the
  // RSS limit already failed the run: then only what was sent is read back).
  const total = peak > options.rssLimitMiB ? sent : options.requests;
  const t1 = Date.now();
  let replies = 0;
  let firstOutOfOrder: string | undefined;
  let lastProgress = Date.now();
  while (replies < total && Date.now() - lastProgress < options.idleMs) {
    let progressed = false;
    while (sent < total && trySend(fd, sent + 1)) {
      sent++;
      progressed = true;
    }
    for (let i = 0; i < 256; i++) {
      const packet = native.recvPacket(fd, 1 << 20);
      if (packet === null || packet.eof) break;
      for (const received of packet.fds) native.close(received);
      replies++;
      progressed = true;
      const text = packet.data.toString('utf8');
      if (firstOutOfOrder === undefined && !text.includes(`"no image ${replies}"`)) firstOutOfOrder = `reply ${replies}: ${text.slice(0, 200)}`;
    }
    if (progressed) lastProgress = Date.now();
    else await sleep(1);
    if (replies % 20_000 === 0) peak = Math.max(peak, proxy.memory().rssMiB);
  }
  peak = Math.max(peak, proxy.memory().rssMiB);
  proxy.resumeReplies();
  return { sentUnread, backpressure, sent, peakRssMiB: peak, rssAtReadMiB, replies, firstOutOfOrder, floodMs, readMs: Date.now() - t1 };
}
