/**
 * Byte ranges of blobs (GetRawBlob's offset and length): checking a range against a blob's size
 * once, for every transport, and cutting a range out of a stream that can only be read from
 * its start (a layer decompressed on the fly).
 */
import type { Readable, TransformCallback } from 'node:stream';
import { nodeStream } from '../node-stream';
import { InvalidArgumentError } from '../../protocol/errors';

/** Bytes [offset, offset + length) of a blob; no length: to its end. */
export interface ByteRange {
  readonly offset: number;
  readonly length?: number | undefined;
}

/** A range checked against a known size: where it starts and how many bytes it covers. */
export interface ResolvedRange {
  readonly start: number;
  readonly length: number;
}

/** The part of a `size`-byte blob a range covers; InvalidArgumentError when it starts past the end. */
export function rangeWithin(range: ByteRange, size: number, what: string): ResolvedRange {
  if (range.offset > size) throw new InvalidArgumentError(`offset ${range.offset} is past the end of ${what} (${size} bytes)`);
  const rest = size - range.offset;
  return { start: range.offset, length: range.length === undefined ? rest : Math.min(range.length, rest) };
}

/** A range's bytes of an in-memory blob, as a stream. */
export function bufferRange(bytes: Buffer, range: ByteRange | undefined, what: string): { stream: Readable; size: number } {
  const { Readable } = nodeStream();
  if (range === undefined) return { stream: Readable.from([bytes]), size: bytes.length };
  const r = rangeWithin(range, bytes.length, what);
  return { stream: Readable.from(r.length === 0 ? [] : [bytes.subarray(r.start, r.start + r.length)]), size: r.length };
}

/**
 * Drops the first `skip` bytes of a stream and ends after `length` more (the rest is not read:
 * the source is destroyed). Errors of the source surface on the returned stream.
 */
export function skipAndTake(source: Readable, skip: number, length: number): Readable {
  let toSkip = skip;
  let left = length;
  let done = false;
  const cut = new (nodeStream().Transform)({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
      let part = chunk;
      if (toSkip > 0) {
        const drop = Math.min(toSkip, part.length);
        toSkip -= drop;
        part = part.subarray(drop);
      }
      if (left > 0 && part.length > 0) {
        const take = part.subarray(0, Math.min(left, part.length));
        left -= take.length;
        this.push(take);
      }
      if (left === 0 && !done) {
        done = true;
        this.push(null);
        source.unpipe(cut);
        source.destroy();
      }
      callback();
    },
  });
  // Once every byte wanted is out, the source's end (destroyed on purpose) is no one's concern.
  source.on('error', (err) => {
    if (!done) cut.destroy(err);
  });
  cut.once('close', () => source.destroy());
  if (length === 0) {
    done = true;
    cut.end();
    source.destroy();
    return cut;
  }
  return source.pipe(cut);
}
