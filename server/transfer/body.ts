/**
 * What a byte-returning method hands back besides its value: the bytes as a stream, how many
 * are expected, and how they are checked. How they travel (a pipe, a FIFO, in-band messages)
 * is a sink the wire chooses; see table.ts.
 */
import type { Readable } from 'node:stream';
import { nodeStream } from '../node-stream';
import type { BlobVerifier } from '../image/digest';

export interface TransferBody {
  readonly stream: Readable;
  /** Bytes expected, or -1 when unknown. */
  readonly size: number;
  /** Checks size and digest as bytes go by; undefined for raw bytes handed over unchecked. */
  readonly verifier: BlobVerifier | undefined;
  /** What is being sent, for messages ("blob sha256:…", "manifest"). */
  readonly what: string;
}

/** A body of bytes already in memory (a manifest, a config), checked when they were read. */
export function bytesBody(bytes: Buffer, what: string): TransferBody {
  return { stream: nodeStream().Readable.from([bytes]), size: bytes.length, verifier: undefined, what };
}
