/**
 * Range requests for blobs, as GetRawBlob's offset and length make them and as a resumed
 * download makes them: the Range header for the bytes still wanted, and what a registry's
 * answer means. 206 must start where asked; a 200 (a registry or storage backend that ignores
 * Range) is used anyway, its leading bytes skipped and its tail cut, so a client always gets
 * exactly the range; 416 says the offset is past the end, except for an empty range at the
 * very end, which is answered with no bytes.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { InvalidArgumentError, RetryableError } from '../../../protocol/errors';
import type { ByteRange } from '../../image/range';
import type { OpenedBody } from './blob-stream';
import { contentLength, responseError, type Response } from './responses';

/** Where a blob range starts and, when bounded, its last byte (inclusive). */
export interface WantedRange {
  readonly start: number;
  readonly last: number | undefined;
}

export function wantedRange(range: ByteRange): WantedRange {
  return { start: range.offset, last: range.length === undefined ? undefined : range.offset + range.length - 1 };
}

/** The Range header for the wanted bytes after the first `delivered` of them. */
export function rangeHeader(wanted: WantedRange, delivered: number): string {
  return `bytes=${wanted.start + delivered}-${wanted.last ?? ''}`;
}

interface ContentRange {
  /** undefined for an unsatisfied range ("bytes *" and the total). */
  readonly first: number | undefined;
  readonly last: number | undefined;
  readonly total: number | undefined;
}

/** Parses "bytes 100-199/200", an unknown total ("/" then "*"), and an unsatisfied range ("bytes *" then "/200"). */
export function parseContentRange(value: string | string[] | undefined): ContentRange | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (text === undefined) return undefined;
  const m = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(text);
  if (m === null) return undefined;
  const num = (s: string | undefined) => (s === undefined || s === '*' ? undefined : Number(s));
  return { first: num(m[1]), last: num(m[2]), total: num(m[3]) };
}

/** An answer to a range request: the body to read from, and how many bytes of it are the range's (-1 if unknown). */
export interface RangeAnswer {
  readonly opened: OpenedBody;
  readonly size: number;
  /** The plain GET of a whole blob: the URL that answered (after redirects) and its headers. */
  readonly served?: { readonly url: URL; readonly headers: IncomingHttpHeaders };
}

/**
 * Makes sense of the answer to a range request for the wanted bytes after the first
 * `delivered`; undefined when the range is empty at the blob's end. Throws the registry's error
 * for other statuses, InvalidArgumentError past the end, RetryableError for a 206 that starts
 * elsewhere than asked.
 */
export async function rangeAnswer(res: Response, wanted: WantedRange, delivered: number, what: string): Promise<RangeAnswer | undefined> {
  const from = wanted.start + delivered;
  const bounded = (available: number) => (wanted.last === undefined ? available : Math.min(available, wanted.last + 1 - from));
  if (res.statusCode === 206) {
    const cr = parseContentRange(res.headers['content-range']);
    if (cr?.first !== from || cr.last === undefined) {
      res.body.destroy();
      throw new RetryableError(`${what}: asked for bytes from ${from}, the registry sent a range starting at ${cr?.first ?? 'an unknown offset'}`);
    }
    return { opened: { body: res.body, skip: 0 }, size: bounded(cr.last + 1 - from) };
  }
  if (res.statusCode === 200) {
    const total = contentLength(res.headers);
    if (total >= 0 && from > total) {
      res.body.destroy();
      throw new InvalidArgumentError(`${what}: offset ${from} is past the end of the blob (${total} bytes)`);
    }
    // The whole blob from byte 0: the bytes before the range are read and dropped, the tail cut.
    return { opened: { body: res.body, skip: from }, size: total >= 0 ? bounded(total - from) : -1 };
  }
  if (res.statusCode === 416) {
    const total = parseContentRange(res.headers['content-range'])?.total;
    await res.body.dump().catch(() => undefined);
    if (total !== undefined && from === total) return undefined;
    throw new InvalidArgumentError(`${what}: offset ${from} is past the end of the blob${total === undefined ? '' : ` (${total} bytes)`}`);
  }
  throw await responseError(res, what, 'blob');
}
