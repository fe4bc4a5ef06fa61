/**
 * A large blob fetched as several Range requests at once, handed on as one in-order stream.
 * On links where each connection is capped (CDNs, long round trips) k connections move about k
 * times the bytes of one; on a fast link (a registry nearby) they only cost CPU. So the blob
 * starts as the one stream of the plain GET, and after it has flowed `sampleMs` its rate decides:
 * below `splitBelowBytesPerSecond` (a capped connection), with neither the reader nor a busy event
 * loop holding it back, that stream is cut a piece further on and the rest comes as Range
 * requests; otherwise it stays one stream to the end.
 *
 * After the split the rest is cut into pieces of `chunkBytes`; at most `connections` pieces are in flight and
 * at most `windowPieces` planned at a time: the head piece (the one the reader is at) streams
 * straight through, the ones after it are held in memory until the reader gets to them, each at
 * most `chunkBytes` (a piece ahead that fills its share stops reading: backpressure, not
 * unbounded buffering), and no piece starts past the window. So memory is bounded by
 * windowPieces × chunkBytes whatever the reader's speed, and all blobs of a pool together by
 * `shared` (held-bytes.ts). Each piece is a ResumableBlobStream: a cut or stalled connection
 * resumes from its own last byte. Digests are checked above, on this stream, as for one stream.
 *
 * A registry that answers a piece's Range request with the whole blob (200) has given up on
 * ranges: the pieces after the head are dropped and the rest comes as one stream.
 */
import { monotonicMs } from '../../monotonic-clock';
import { Readable } from 'node:stream';
import { CancelledError, LayerpipeError } from '../../../protocol/errors';
import { ResumableBlobStream, type OpenedBody } from './blob-stream';
import { FirstStreamSample } from './first-stream-sample';
import type { HeldBytes } from './held-bytes';

/** A Range request for a piece was answered with the whole blob (200): this registry ignores ranges. */
export class RangesIgnoredError extends LayerpipeError {
  override name = 'RangesIgnoredError';
}

/**
 * Opens bytes [from, last] of the blob. `whole`: a 200 answer (the whole blob) is used, its
 * leading bytes skipped; otherwise it throws RangesIgnoredError. `attempts` undefined: the
 * client's own retries.
 */
export type PieceOpener = (from: number, last: number, whole: boolean, signal: AbortSignal, attempts: number | undefined) => Promise<OpenedBody>;

export interface ParallelBlobOptions {
  readonly what: string;
  readonly totalSize: number;
  /** Pieces in flight at most. */
  readonly connections: number;
  /** Pieces in flight or held, not yet handed on, at most (>= connections): the memory bound is this x chunkBytes. */
  readonly windowPieces: number;
  readonly chunkBytes: number;
  /** How long the first stream flows before its rate is judged; 0: split at once. */
  readonly sampleMs: number;
  /** A first stream slower than this is split. */
  readonly splitBelowBytesPerSecond: number;
  readonly stallTimeoutMs: number;
  readonly maxAttemptsWithoutProgress: number;
  readonly maxResumes: number;
  readonly backoffMs: (attempt: number) => number;
  readonly open: PieceOpener;
  /** What every blob of the pool holds ahead of its reader, and the most this blob lets that reach. */
  readonly shared?: { readonly held: HeldBytes; readonly maxBytes: number };
  readonly signal?: AbortSignal;
  readonly onResume?: (offset: number, reason: string) => void;
  /** The first stream measured `bytesPerSecond`: from `offset` on the blob comes as Range requests. */
  readonly onSplit?: (offset: number, bytesPerSecond: number) => void;
  /** Ranges were refused: the rest, from `offset`, comes as one stream. */
  readonly onFallback?: (offset: number) => void;
}

interface Piece {
  /** Blob offsets [start, end). */
  readonly start: number;
  /** Moved nearer when the first stream is split. */
  end: number;
  /** The tail after a fallback: a 200 answer is fine. */
  readonly whole: boolean;
  stream: ResumableBlobStream | undefined;
  /** Received, not yet handed on. */
  readonly held: Buffer[];
  heldBytes: number;
  received: number;
  ended: boolean;
  error: Error | undefined;
}

export class ParallelBlobStream extends Readable {
  /** In blob order; pieces[0] is the head, the one the reader is at. */
  private pieces: Piece[] = [];
  private nextStart = 0;
  private wanted = false;
  private failed = false;
  private ended = false;
  private heldTotal = 0;
  private heldPeak = 0;
  private requests = 0;
  /** Bytes per piece after the split: chunkBytes, or less to share a short rest evenly. */
  private pieceBytes: number;
  /** Whether the first stream is no longer measured: split (at once, or after a slow sample), or too little left. */
  private judged: boolean;
  private readonly sampled: FirstStreamSample;
  private rate: number | undefined;
  private splitOffset: number | undefined;
  private waitingForRoom = false;
  private readonly aborter = new AbortController();
  private readonly onAbort = (): void => {
    this.destroy(new CancelledError(`${this.options.what}: aborted`));
  };

  /** `first` is the answer to the plain GET: the blob from byte 0, used for the first piece. */
  constructor(first: OpenedBody, private readonly options: ParallelBlobOptions) {
    super({ highWaterMark: 64 * 1024 });
    if (options.signal?.aborted) queueMicrotask(this.onAbort);
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.pieceBytes = options.chunkBytes;
    this.sampled = new FirstStreamSample(options.sampleMs);
    this.judged = options.sampleMs <= 0;
    if (this.judged) this.splitOffset = Math.min(options.chunkBytes, options.totalSize);
    const head = this.plan(0, this.judged ? Math.min(options.chunkBytes, options.totalSize) : options.totalSize, false);
    this.requests++;
    this.attach(head, first);
    this.fill();
  }

  /** Most bytes held ahead of the reader at any one time (for tests and benchmarks). */
  get peakHeldBytes(): number {
    return this.heldPeak;
  }

  /** Range requests opened for pieces so far (the first GET included, resumes not). */
  get pieceRequests(): number {
    return this.requests;
  }

  /** Where the first stream was cut and Range requests took over; undefined: one stream so far. */
  get splitAt(): number | undefined {
    return this.splitOffset;
  }

  /** The first stream's last measured rate, bytes/s; undefined until measured (or when split at once). */
  get sampledBytesPerSecond(): number | undefined {
    return this.rate;
  }

  override _read(): void {
    this.wanted = true;
    this.sampled.readerWants(monotonicMs());
    this.drain();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.options.shared?.held.forget(this.onRoom);
    this.aborter.abort();
    for (const piece of this.pieces) this.letGo(piece);
    this.pieces = [];
    callback(err);
  }

  private plan(start: number, end: number, whole: boolean): Piece {
    const piece: Piece = { start, end, whole, stream: undefined, held: [], heldBytes: 0, received: 0, ended: false, error: undefined };
    this.pieces.push(piece);
    this.nextStart = end;
    return piece;
  }

  /** Starts pieces while fewer than `connections` are in flight and fewer than `windowPieces` are planned, until the blob is covered. */
  private fill(): void {
    // A piece in its last eighth no longer counts: the next request's round trip overlaps its tail.
    const inFlight = () => this.pieces.filter((p) => !p.ended && p.error === undefined && p.end - p.start - p.received > this.pieceBytes / 8).length;
    while (!this.failed && !this.destroyed && this.pieces.length < this.options.windowPieces && inFlight() < this.options.connections && this.nextStart < this.options.totalSize) {
      if (this.pieces.length > 0 && this.sharedFull()) return this.waitForRoom();
      const piece = this.plan(this.nextStart, Math.min(this.nextStart + this.pieceBytes, this.options.totalSize), false);
      void this.open(piece);
    }
  }

  private async open(piece: Piece): Promise<void> {
    this.requests++;
    let opened: OpenedBody;
    try {
      opened = await this.options.open(piece.start, piece.end - 1, piece.whole, this.aborter.signal, undefined);
    } catch (err) {
      this.onPieceError(piece, err instanceof Error ? err : new LayerpipeError(String(err)));
      return;
    }
    if (this.destroyed || !this.pieces.includes(piece)) {
      opened.body.destroy();
      return;
    }
    this.attach(piece, opened);
  }

  private attach(piece: Piece, opened: OpenedBody): void {
    const length = piece.end - piece.start;
    const stream = new ResumableBlobStream(opened, {
      what: `${this.options.what} (bytes ${piece.start}-${piece.end - 1})`,
      totalSize: length,
      limit: length,
      stallTimeoutMs: this.options.stallTimeoutMs,
      maxAttemptsWithoutProgress: this.options.maxAttemptsWithoutProgress,
      maxResumes: this.options.maxResumes,
      backoffMs: this.options.backoffMs,
      signal: this.aborter.signal,
      onResume: (offset, reason) => this.options.onResume?.(piece.start + offset, reason),
      // Each reopen is one try: the piece's own loop does the retrying and the counting.
      reopen: (delivered, signal) => this.options.open(piece.start + delivered, piece.end - 1, piece.whole, signal, 1),
    });
    piece.stream = stream;
    stream.on('data', (chunk: Buffer) => this.onPieceData(piece, chunk));
    stream.once('end', () => this.onPieceEnd(piece));
    stream.on('error', (err: Error) => this.onPieceError(piece, err));
    if (piece === this.pieces[0] && !this.wanted) stream.pause();
  }

  private onPieceData(piece: Piece, chunk: Buffer): void {
    if (this.destroyed || !this.pieces.includes(piece)) return;
    const before = piece.end - piece.start - piece.received;
    piece.received += chunk.length;
    if (!this.judged) this.sample(piece, chunk.length);
    if (before > this.pieceBytes / 8 && before - chunk.length <= this.pieceBytes / 8) this.fill();
    const head = piece === this.pieces[0];
    if (head && piece.held.length === 0 && this.wanted) {
      if (!this.push(chunk)) {
        this.wanted = false;
        if (!this.judged) this.sampled.readerStopped(monotonicMs());
        piece.stream?.pause();
      }
      return;
    }
    piece.held.push(chunk);
    piece.heldBytes += chunk.length;
    this.heldTotal += chunk.length;
    this.options.shared?.held.add(chunk.length);
    this.heldPeak = Math.max(this.heldPeak, this.heldTotal);
    // The head waits for the reader; a piece ahead reads on until its share is full.
    if (head || piece.heldBytes >= this.options.chunkBytes) piece.stream?.pause();
    else if (this.sharedFull()) {
      piece.stream?.pause();
      this.waitForRoom();
    }
  }

  private sharedFull(): boolean {
    const shared = this.options.shared;
    return shared !== undefined && shared.held.bytes >= shared.maxBytes;
  }

  private waitForRoom(): void {
    if (this.waitingForRoom || this.destroyed) return;
    this.waitingForRoom = true;
    this.options.shared?.held.waitForRoom(this.onRoom);
  }

  /** Some blob handed bytes on: pieces ahead with room in their share read on, new pieces may start. */
  private readonly onRoom = (): void => {
    this.waitingForRoom = false;
    if (this.destroyed) return;
    if (this.sharedFull()) return this.waitForRoom();
    for (const piece of this.pieces.slice(1)) if (piece.heldBytes < this.options.chunkBytes) piece.stream?.resume();
    this.fill();
  };

  /**
   * Counts a chunk of the first stream (first-stream-sample.ts); when its rate is judged slow,
   * and slow because of the link, with enough left, splits it; otherwise samples again.
   */
  private sample(first: Piece, bytes: number): void {
    const verdict = this.sampled.count(bytes, monotonicMs());
    if (verdict === undefined) return;
    this.rate = verdict.rate;
    const stream = first.stream;
    // The ResumableBlobStream may have taken in bytes not yet handed here: cut after those.
    const at = first.start + (stream?.bytesDelivered ?? 0);
    const rest = this.options.totalSize - at;
    // Less than a piece left: the round trips of new requests would eat most of the gain.
    if (stream === undefined || this.failed || rest < this.options.chunkBytes) {
      this.judged = true;
      return;
    }
    if (verdict.rate >= this.options.splitBelowBytesPerSecond || verdict.notTheLink) {
      this.sampled.restart();
      return;
    }
    this.judged = true;
    // The first stream goes on for one piece (it is past its slow start); a short rest is shared evenly.
    this.pieceBytes = Math.min(this.options.chunkBytes, Math.ceil(rest / this.options.connections));
    const cut = at + this.pieceBytes;
    stream.shortenTo(cut - first.start);
    first.end = cut;
    this.nextStart = cut;
    this.splitOffset = cut;
    this.options.onSplit?.(cut, verdict.rate);
    this.fill();
  }

  private onPieceEnd(piece: Piece): void {
    piece.ended = true;
    piece.stream = undefined;
    if (piece === this.pieces[0]) this.drain();
    else this.fill();
  }

  private onPieceError(piece: Piece, err: Error): void {
    if (this.destroyed || !this.pieces.includes(piece)) return;
    if (err instanceof RangesIgnoredError && !piece.whole) {
      this.fallBack(piece);
      return;
    }
    piece.stream = undefined;
    piece.error = err;
    // No new pieces: the blob cannot complete. The error is reported when the reader gets here,
    // after every byte before it.
    this.failed = true;
    if (piece === this.pieces[0]) this.drain();
  }

  /**
   * Ranges were refused for `refused`: the pieces after the head are dropped (what they hold
   * too), and the rest of the blob, from the first byte not received, comes as one stream.
   */
  private fallBack(refused: Piece): void {
    const head = this.pieces[0]!;
    for (const piece of this.pieces.slice(1)) this.letGo(piece);
    let from: number;
    if (refused === head) {
      this.letGo(head, false);
      head.ended = true;
      from = head.start + head.received;
      this.pieces = [head];
    } else {
      from = head.end;
      this.pieces = [head];
    }
    this.options.onFallback?.(from);
    if (from < this.options.totalSize) void this.open(this.plan(from, this.options.totalSize, true));
    else this.nextStart = this.options.totalSize;
    this.drain();
  }

  /** Stops a piece's stream and, unless told to keep them, lets go of its bytes. */
  private letGo(piece: Piece, forgetHeld = true): void {
    const stream = piece.stream;
    piece.stream = undefined;
    if (stream !== undefined) {
      stream.removeAllListeners('data');
      stream.removeAllListeners('end');
      stream.destroy();
    }
    if (forgetHeld) {
      this.heldTotal -= piece.heldBytes;
      this.options.shared?.held.remove(piece.heldBytes);
      piece.held.length = 0;
      piece.heldBytes = 0;
    }
  }

  /** Hands on what the head holds, moves to the next piece when the head is done, ends at the blob's end. */
  private drain(): void {
    while (!this.destroyed && this.wanted) {
      const head = this.pieces[0];
      if (head === undefined) {
        if (!this.ended && this.nextStart >= this.options.totalSize) {
          this.ended = true;
          this.push(null);
        }
        return;
      }
      while (head.held.length > 0) {
        const chunk = head.held.shift()!;
        head.heldBytes -= chunk.length;
        this.heldTotal -= chunk.length;
        this.options.shared?.held.remove(chunk.length);
        if (!this.push(chunk)) {
          this.wanted = false;
          return;
        }
      }
      if (head.error !== undefined) {
        this.destroy(head.error);
        return;
      }
      if (!head.ended) {
        head.stream?.resume();
        return;
      }
      this.pieces.shift();
      this.fill();
    }
  }
}
