/**
 * One blob into a destination directory, safely: a verified file already there is kept; a
 * partial file left by an interrupted copy is continued with a ranged read; the bytes are
 * hashed as they are written and the file is renamed to its final name only once its size and
 * digest are right. A file at the final name is therefore always a whole, verified blob.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal } from 'node:stream';
import { DigestMismatchError } from '../../protocol/errors';
import { native, type BlobHasher } from '../../protocol/seqpacket/native';
import { BlobVerifier, parseDigest, verifyBytes } from '../image/digest';
import type { ByteRange } from '../image/range';
import type { BlobReader } from '../image/types';

/** Suffix of a blob being written: an interrupted copy leaves it for the next run to continue. */
export const PARTIAL_SUFFIX = '.layerpipe-partial';

/** How a blob came to be in place. */
export type BlobOutcome =
  | { readonly kind: 'present' }
  | { readonly kind: 'copied'; readonly fetched: number; readonly resumedFrom: number };

export interface BlobSource {
  readonly digest: string;
  readonly size: number;
  /** The blob (or a range of it) from the source image; not verified there. */
  open(range: ByteRange | undefined): Promise<BlobReader>;
}

export interface BlobProgress {
  /** The blob's bytes already in place before any is fetched (a resumed partial file). */
  start(resumedFrom: number): void;
  /** More bytes of the blob were written. */
  advance(bytes: number): void;
}

/** A file's bytes counted by `verifier` and hashed by `hasher`, as if they had just arrived; false past the expected size. */
async function hashFile(file: string, verifier: BlobVerifier, hasher: BlobHasher): Promise<boolean> {
  for await (const chunk of createReadStream(file, { highWaterMark: WRITE_BATCH_BYTES }) as AsyncIterable<Buffer>) {
    if (verifier.count(chunk.length).overflow) return false;
    await hasher.update([chunk], -1);
  }
  return true;
}

/** The file holds exactly the blob (size and digest). */
async function holdsBlob(file: string, digest: string, size: number): Promise<boolean> {
  const info = await stat(file).catch(() => undefined);
  if (info === undefined || !info.isFile() || (size >= 0 && info.size !== size)) return false;
  const verifier = new BlobVerifier(parseDigest(digest), size);
  const hasher = new native.BlobHasher(verifier.algorithm);
  if (!(await hashFile(file, verifier, hasher))) return false;
  try {
    verifier.finishHashed(hasher.digest());
    return true;
  } catch {
    return false;
  }
}

async function fileSize(file: string): Promise<number> {
  const info = await stat(file).catch(() => undefined);
  return info?.isFile() === true ? info.size : 0;
}

/**
 * Bytes gathered before one pool job (hash, then writev). A write per network chunk (tens of
 * KiB) cost a thread-pool round trip each, and a Transform and a WriteStream per blob cost more
 * CPU than the hashing.
 */
const WRITE_BATCH_BYTES = 1024 * 1024;
/**
 * Bytes gathered while a job runs before the network waits for it. Waiting as soon as the next
 * batch was full stalled the connections each time a job ran long, and over a link with a long
 * round trip the transfer never caught up.
 */
const HELD_BATCH_BYTES = 4 * WRITE_BATCH_BYTES;

/** Makes the bytes durable before the rename publishes them, so a crash never leaves a short blob under its final name. */
async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Fetches the blob (from `resumeFrom`) onto the end of `partial`, and syncs the file once the
 * bytes are verified. This thread only receives: each batch is hashed and written by one pool
 * job (BlobHasher), in flight while the next batch gathers; the network waits only when the
 * next one reaches HELD_BATCH_BYTES, so at most that and one job's batch are held here.
 */
async function fetchInto(partial: string, blob: BlobSource, resumeFrom: number, progress: BlobProgress, signal: AbortSignal): Promise<number> {
  const verifier = new BlobVerifier(parseDigest(blob.digest), blob.size);
  const hasher = new native.BlobHasher(verifier.algorithm);
  if (resumeFrom > 0) await hashFile(partial, verifier, hasher);
  progress.start(resumeFrom);
  // A partial file that is already whole (cut before its rename) needs no read at all.
  if (resumeFrom > 0 && resumeFrom === blob.size) {
    verifier.finishHashed(hasher.digest());
    await syncFile(partial);
    return 0;
  }
  const reader = await blob.open(resumeFrom > 0 ? { offset: resumeFrom } : undefined);
  const handle = await open(partial, resumeFrom > 0 ? 'a' : 'w');
  let batch: Buffer[] = [];
  let batched = 0;
  let fetched = 0;
  // One pool job at a time; one that ends with a full batch waiting starts the next at once.
  let job: Promise<void> = Promise.resolve();
  let jobRunning = false;
  let failure: unknown;
  const startJob = (): void => {
    const chunks = batch;
    batch = [];
    batched = 0;
    jobRunning = true;
    job = hasher.update(chunks, handle.fd).then(
      () => {
        jobRunning = false;
        if (batched >= WRITE_BATCH_BYTES && failure === undefined) startJob();
      },
      (err: unknown) => {
        jobRunning = false;
        failure ??= err;
      },
    );
  };
  /** Waits until no job runs; throws the first job's failure. */
  const jobsDone = async (): Promise<void> => {
    while (jobRunning) await job;
    if (failure !== undefined) throw failure;
  };
  try {
    addAbortSignal(signal, reader.stream);
    for await (const chunk of reader.stream as AsyncIterable<Buffer>) {
      if (failure !== undefined) throw failure;
      if (verifier.count(chunk.length).overflow) throw verifier.overflowError();
      batch.push(chunk);
      batched += chunk.length;
      fetched += chunk.length;
      progress.advance(chunk.length);
      if (batched >= HELD_BATCH_BYTES) await jobsDone();
      if (batched >= WRITE_BATCH_BYTES && !jobRunning) startJob();
    }
    await jobsDone();
    await hasher.update(batch, handle.fd);
    verifier.finishHashed(hasher.digest());
    await handle.sync();
  } catch (err) {
    // Interrupted (a signal, a dropped connection): keep what arrived for the next run to continue from.
    if (!(err instanceof DigestMismatchError)) await jobsDone().then(() => hasher.update(batch, handle.fd)).catch(() => {});
    throw err;
  } finally {
    reader.stream.destroy();
    await jobsDone().catch(() => {});
    await handle.close();
  }
  return fetched;
}

/**
 * Puts the blob at `file` (its final name). A partial file is continued from its end; if the
 * whole then fails verification, the partial bytes may be what is wrong, so the blob is fetched
 * once more from its start before a DigestMismatchError is reported. A failed blob leaves no
 * file at `file` that was not there before, and no partial file that failed verification.
 */
export async function placeBlob(file: string, blob: BlobSource, progress: BlobProgress, signal: AbortSignal): Promise<BlobOutcome> {
  if (await holdsBlob(file, blob.digest, blob.size)) return { kind: 'present' };
  await mkdir(path.dirname(file), { recursive: true });
  const partial = `${file}${PARTIAL_SUFFIX}`;
  let resumeFrom = await fileSize(partial);
  if (blob.size >= 0 && resumeFrom > blob.size) resumeFrom = 0;
  for (;;) {
    try {
      const fetched = await fetchInto(partial, blob, resumeFrom, progress, signal);
      await rename(partial, file);
      return { kind: 'copied', fetched, resumedFrom: resumeFrom };
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err;
      await rm(partial, { force: true });
      if (resumeFrom === 0) throw new DigestMismatchError(`blob ${blob.digest}: ${err.message}`);
      resumeFrom = 0;
    }
  }
}

/** Writes small bytes (a manifest, a config) at `file` through a temporary name, after checking them against `digest`. */
export async function placeBytes(file: string, bytes: Buffer, digest: string): Promise<void> {
  verifyBytes(bytes, digest, `blob ${digest}`);
  await writeFileAtomically(file, bytes);
}

/** Replaces `file` in one step: readers see the old bytes or the new ones, never a mix. */
export async function writeFileAtomically(file: string, bytes: Buffer | string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.layerpipe-${process.pid}-${Date.now()}.tmp`;
  const handle = await open(temp, 'w', 0o644);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
