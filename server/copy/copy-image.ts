/**
 * The copy engine behind `layerpipe copy SRC DEST`: opens SRC through the one open path (so
 * the signature policy judges it, as for skopeo copy), plans what to write, copies every blob
 * with bounded concurrency (each verified, resumed or skipped as blob-file.ts decides), and
 * publishes the destination last.
 */
import { UnsupportedError } from '../../protocol/errors';
import { openImage } from '../image/open';
import type { SystemContext } from '../image/types';
import { parseImageName } from '../transports/all';
import { placeBlob, type BlobOutcome } from './blob-file';
import { parseDestination } from './destination';
import { planCopy, type PlannedBlob } from './plan';

/** containers/image copies at most this many layers at once by default. */
export const DEFAULT_CONCURRENCY = 6;

export interface CopyOptions {
  readonly all: boolean;
  readonly preserveDigests: boolean;
  /** Drop the source's signatures instead of refusing a destination that cannot store them. */
  readonly removeSignatures: boolean;
  readonly concurrency?: number;
}

/** What a copy tells whoever shows its progress. */
export interface CopyEvents {
  /** The blobs about to be copied, in order. */
  planned(blobs: readonly { readonly digest: string; readonly size: number; readonly role: PlannedBlob['role'] }[]): void;
  blobStarted(digest: string, resumedFrom: number): void;
  blobAdvanced(digest: string, bytes: number): void;
  blobFinished(digest: string, outcome: BlobOutcome): void;
  publishing(): void;
}

export interface CopyResult {
  /** Digest of the manifest the destination names (the list's, with --all). */
  readonly manifestDigest: string;
  readonly blobs: number;
  /** Bytes read from the source for blobs (resumed and skipped bytes are not counted). */
  readonly fetchedBytes: number;
  readonly skippedBlobs: number;
}

/** Runs `work` over `items`, at most `limit` at once; the first failure stops new work and is thrown once all running work has settled. */
async function eachBounded<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

export async function copyImage(src: string, dest: string, ctx: SystemContext, opts: CopyOptions, events: CopyEvents, signal: AbortSignal): Promise<CopyResult> {
  const destination = parseDestination(dest);
  const reference = parseImageName(src);
  const image = await openImage(reference, ctx, signal);
  try {
    const signatures = await image.unparsed.signatures();
    if (signatures.length > 0 && !opts.removeSignatures) {
      throw new UnsupportedError(`${src} has ${signatures.length} signature(s) and layerpipe copy cannot write signatures to ${destination.kind}: destinations; use --remove-signatures to copy the image without them`);
    }
    const plan = await planCopy(image, { ociOnly: destination.ociOnly, all: opts.all, preserveDigests: opts.preserveDigests, signal });
    await destination.prepare();
    events.planned(plan.blobs);
    // A failed blob aborts the others at once rather than letting them run to their end.
    const stop = new AbortController();
    const blobSignal = AbortSignal.any([signal, stop.signal]);
    let fetchedBytes = 0;
    let skippedBlobs = 0;
    await eachBounded(plan.blobs, opts.concurrency ?? DEFAULT_CONCURRENCY, async (blob) => {
      try {
        const outcome = await placeBlob(destination.blobFile(blob.digest), blob, {
          start: (resumedFrom) => events.blobStarted(blob.digest, resumedFrom),
          advance: (n) => events.blobAdvanced(blob.digest, n),
        }, blobSignal);
        if (outcome.kind === 'present') skippedBlobs++;
        else fetchedBytes += outcome.fetched;
        events.blobFinished(blob.digest, outcome);
      } catch (err) {
        stop.abort(err);
        throw err;
      }
    });
    events.publishing();
    await destination.publish(plan);
    return { manifestDigest: plan.top.digest, blobs: plan.blobs.length, fetchedBytes, skippedBlobs };
  } catch (err) {
    // Stopped from outside (SIGINT): say so, rather than whichever read noticed first.
    throw signal.aborted ? signal.reason : err;
  } finally {
    await image.close();
  }
}
