/**
 * When and where a blob's pieces are fetched in parallel (blob-parallel.ts): only when the
 * plain GET's answer says the server takes byte ranges and the blob is big enough, and each
 * piece's Range request goes where the registry sent that GET (a storage or CDN URL after a
 * redirect), with the registry's Authorization only on the registry's own origin. A storage
 * URL that stops answering (a presigned URL that expired) is replaced by asking the registry
 * again.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { RetryableError } from '../../../protocol/errors';
import type { ParallelRangeOptions } from '../../image/types';
import { ParallelBlobStream, RangesIgnoredError, type ParallelBlobOptions, type PieceOpener } from './blob-parallel';
import { rangeAnswer, rangeHeader } from './blob-range';
import type { OpenedBody } from './blob-stream';
import type { HeldBytes } from './held-bytes';
import type { Response } from './responses';

/** "Accept-Ranges: bytes" (RFC 9110), in any case, possibly among other units. */
function acceptsByteRanges(headers: IncomingHttpHeaders): boolean {
  const value = headers['accept-ranges'];
  const text = Array.isArray(value) ? value.join(',') : value;
  return text !== undefined && text.split(',').some((unit) => unit.trim().toLowerCase() === 'bytes');
}

/** Whether a blob whose plain GET was answered with these headers is worth splitting. */
export function splitsBlob(size: number, headers: IncomingHttpHeaders, opts: ParallelRangeOptions): boolean {
  return opts.connections > 1 && size >= opts.minBlobBytes && size > opts.chunkBytes && acceptsByteRanges(headers);
}

/**
 * Sends one GET of `target` with this Range header. `withAuth`: with the registry's
 * Authorization (the caller says so only for the registry's own origin).
 */
export type RangeSender = (target: URL, range: string, withAuth: boolean, signal: AbortSignal, attempts: number | undefined) => Promise<Response>;

/** What the plain GET of the blob found out. */
export interface FirstAnswer {
  readonly opened: OpenedBody;
  readonly size: number;
  /** The URL that answered, after redirects. */
  readonly servedBy: URL;
  /** The registry's fastest answer so far (ms, answer-times.ts): at least `opts.remoteAfterMs` means a distant registry. */
  readonly fastestAnswerMs: number;
}

export type ParallelSettings = Omit<ParallelBlobOptions, 'totalSize' | 'connections' | 'windowPieces' | 'chunkBytes' | 'sampleMs' | 'splitBelowBytesPerSecond' | 'open' | 'shared'> & {
  /** What all blobs of the pool hold ahead of their readers, kept under opts.maxHeldBytes. */
  readonly held?: HeldBytes;
};

/**
 * The blob from the plain GET's answer, split into pieces fetched `opts.connections` at a time
 * when that one stream proves slow, or at once (opts.sampleMs 0, or a distant registry: one
 * connection over a long round trip rarely fills the link, and sampling would only delay).
 */
export function parallelBlob(first: FirstAnswer, registryUrl: URL, send: RangeSender, opts: ParallelRangeOptions, settings: ParallelSettings): ParallelBlobStream {
  const { held, ...rest } = settings;
  return new ParallelBlobStream(first.opened, {
    ...rest,
    ...(held !== undefined ? { shared: { held, maxBytes: opts.maxHeldBytes } } : {}),
    totalSize: first.size,
    connections: opts.connections,
    // Two pieces more than in flight: new requests start while the reader drains pieces that came in ahead.
    windowPieces: opts.connections + 2,
    chunkBytes: opts.chunkBytes,
    sampleMs: first.fastestAnswerMs >= opts.remoteAfterMs ? 0 : opts.sampleMs,
    splitBelowBytesPerSecond: opts.splitBelowBytesPerSecond,
    open: pieceOpener(registryUrl, first.servedBy, send, settings.what),
  });
}

function pieceOpener(registryUrl: URL, servedBy: URL, send: RangeSender, what: string): PieceOpener {
  let target = servedBy;
  const sendTo = (url: URL, range: string, signal: AbortSignal, attempts: number | undefined) =>
    send(url, range, url.origin === registryUrl.origin, signal, attempts);
  return async (from, last, whole, signal, attempts) => {
    const wanted = { start: from, last };
    const range = rangeHeader(wanted, 0);
    let res = await sendTo(target, range, signal, attempts);
    if (target.href !== registryUrl.href && res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 416) {
      await res.body.dump().catch(() => undefined);
      res = await sendTo(registryUrl, range, signal, attempts);
      target = res.url;
    }
    if (res.statusCode === 200 && !whole) {
      res.body.destroy();
      throw new RangesIgnoredError(`${what}: the registry answered a range request with the whole blob`);
    }
    const answer = await rangeAnswer(res, wanted, 0, what);
    if (answer === undefined) throw new RetryableError(`${what}: the registry says the blob ends at byte ${from}, before the size it announced`);
    return answer.opened;
  };
}
