/**
 * The in-band copy of a local file span (oci:, dir:, an archive's entry): read by offset into
 * one buffer the transfer keeps, hashed, and handed to the connection, which encodes it into
 * its message before the send returns. A file read stream cost the proxy more CPU than the
 * rest of a stream transfer: a fresh buffer per read (mapped, faulted in, freed) and a
 * thread-pool round trip per chunk. Like FilePump (file-pump.c), the read happens on the loop:
 * a blob's pages are in the page cache nearly always.
 *
 * Same guarantees as copy.ts: never more than the client's credit, every byte within the
 * expected size sent before a verification error is reported, the signal or the sink closing
 * settles the copy at once, and the stream (which owns the descriptor) is destroyed however the
 * copy ends. An overflow or the end of the file is found without waiting for credit.
 */
import { readSync } from 'node:fs';
import { LayerpipeError } from '../../../protocol/errors';
import type { TransferBody } from '../body';
import type { CopyOptions } from '../copy';
import type { FileSpan } from '../file-span';

/** What the span copy needs of the in-band sink. */
export interface CreditedSender {
  /** Resolves, once the sink started and has credit, with the bytes that may be sent now; rejects once closed. */
  nextWindow(): Promise<number>;
  /** Sends `chunk` (within the window), its bytes taken before the call returns; resolves once the connection can take more. */
  sendNow(chunk: Buffer): Promise<void>;
  describeFailure(err: Error): Error;
}

/** Bytes moved between two returns to the event loop (other transfers and requests get their turn). */
const YIELD_EVERY_BYTES = 4 * 1024 * 1024;

function asError(err: unknown): Error {
  return err instanceof Error ? err : new LayerpipeError(String(err));
}

function readAt(fd: number, into: Buffer, length: number, position: number): number {
  return readSync(fd, into, 0, length, position);
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function copySpanInBand(span: FileSpan, body: TransferBody, sink: CreditedSender, maxChunk: number, options: CopyOptions): Promise<void> {
  const { signal, guard, progress } = options;
  const { verifier } = body;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => settle(asError(signal.reason));
    function settle(err?: Error): void {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      body.stream.on('error', () => undefined); // a late error of a stream given up on must not go uncaught
      body.stream.destroy(); // releases the descriptor
      if (err === undefined) resolve();
      else reject(err);
    }
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });

    const buffer = Buffer.allocUnsafeSlow(maxChunk);
    let moved = 0;
    /** At the span's end (or the file's), or past the expected size: the verdict. */
    const finish = (eof: boolean): void => {
      if (eof && span.length !== undefined && moved < span.length && span.truncated !== undefined) return settle(span.truncated());
      try {
        verifier?.finish();
      } catch (err) {
        return settle(asError(err));
      }
      settle();
    };
    const run = async (): Promise<void> => {
      let sinceYield = 0;
      for (;;) {
        if (settled) return;
        const remaining = span.length === undefined ? Infinity : span.length - moved;
        const room = verifier?.room ?? Infinity;
        if (remaining === 0) return finish(false);
        if (room === 0) {
          // Every expected byte is sent: one more in the span is an overflow, none is the end.
          if (readAt(span.fd, buffer, 1, span.start + moved) === 0) return finish(true);
          return settle(verifier!.overflowError());
        }
        let window: number;
        try {
          window = await sink.nextWindow();
        } catch (err) {
          return settle(sink.describeFailure(asError(err)));
        }
        if (settled) return;
        const n = readAt(span.fd, buffer, Math.min(maxChunk, window, remaining, room), span.start + moved);
        if (n === 0) return finish(true);
        const chunk = buffer.subarray(0, n);
        verifier?.take(chunk); // within `room`: never an overflow
        guard?.count(n);
        progress?.add(n);
        moved += n;
        try {
          await sink.sendNow(chunk);
        } catch (err) {
          return settle(sink.describeFailure(asError(err)));
        }
        sinceYield += n;
        if (sinceYield >= YIELD_EVERY_BYTES) {
          sinceYield = 0;
          await nextTurn();
        }
      }
    };
    run().catch((err: unknown) => settle(asError(err))); // a failed read (EIO...)
  });
}
