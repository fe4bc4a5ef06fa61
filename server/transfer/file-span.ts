/**
 * Where a local blob's bytes lie in an open file. A transport that streams a file by offset
 * (oci:, dir:, an archive's entry) tags its stream with the span, so that the pipe copy can
 * splice or pread the bytes itself instead of reading the stream; any other copy just reads
 * the stream. The stream keeps owning the descriptor (destroying it releases the file).
 */
import type { Readable } from 'node:stream';

export interface FileSpan {
  readonly fd: number;
  readonly start: number;
  /** Bytes to copy; undefined: up to the file's end, wherever that is when it is reached. */
  readonly length: number | undefined;
  /** The error for a file ending before `length` bytes; without it the bytes just end there. */
  readonly truncated?: () => Error;
}

const FILE_SPAN = Symbol('layerpipe.fileSpan');

type Tagged = Readable & { [FILE_SPAN]?: FileSpan };

/** Tags `stream` (fresh, unread) as reading `span`; returns it. */
export function withFileSpan<T extends Readable>(stream: T, span: FileSpan): T {
  (stream as Tagged)[FILE_SPAN] = span;
  return stream;
}

/** The span a stream reads, while none of it has been read yet. */
export function fileSpanOf(stream: Readable): FileSpan | undefined {
  const span = (stream as Tagged)[FILE_SPAN];
  return span !== undefined && !stream.readableDidRead && !stream.destroyed ? span : undefined;
}
