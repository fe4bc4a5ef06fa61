/**
 * A tar archive opened for serving: indexed once, then every file inside it is a byte range of
 * one open file descriptor. Shared by oci-archive: and docker-archive:.
 *
 * Compressed archives: a gzip stream cannot be read by offset, so opening one decompresses it
 * once, in a single streaming pass, into an anonymous spill file under the --tmpdir directory
 * while the headers are indexed; from then on it is served like an uncompressed archive. The
 * cost is one full decompression before OpenImage returns and disk space equal to the
 * uncompressed archive until the image is closed. The spill file is unlinked as soon as it is
 * created, so nothing is left behind even if the process is killed. (Decompressing again from
 * the start for every blob would use no disk, but streaming k layers would cost about k/2 full
 * decompressions.) bzip2, xz and zstd archives are refused: Node 20 cannot decompress them.
 */
import { constants as fsConstants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { clipInput, LayerpipeError, systemErrorText, UnsafeContentError, UnsupportedError } from '../../../protocol/errors';
import { native } from '../../../protocol/seqpacket/native';
import { rangeWithin, type ByteRange, type ResolvedRange } from '../../image/range';
import type { SystemContext } from '../../image/types';
import type { OpenedFile } from '../local/confined-dir';
import { FileByteSource, SpillingStreamSource } from './byte-sources';
import { requireGzipOrNone, sniffCompression, type Compression } from './compression';
import { indexTar, type TarEntry, type TarIndex } from './tar-index';
import { withFileSpan } from '../../transfer/file-span';

const STREAM_CHUNK = 256 * 1024;
/** zlib's default output chunk is 16 KiB: one spill write per 16 KiB made spilling several times slower. */
const SPILL_CHUNK = 1024 * 1024;

/** What a non-regular archive path is, for the refusal. */
function fileKindText(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

export interface TarArchiveOptions {
  /** How many links (symbolic or hard) a lookup may follow inside the archive. */
  readonly maxLinkHops: number;
}

/** A failure to open the archive file, in words: "no such file or directory" rather than Node's "ENOENT: …, open '…'". */
function fileErrorText(err: unknown): string {
  const text = systemErrorText(err);
  return text.replace(/^E[A-Z]+: /, '');
}

export class TarArchive {
  private closed = false;

  private constructor(
    /** The archive as the user named it, for messages. */
    readonly file: string,
    private readonly handle: FileHandle,
    readonly index: TarIndex,
    /** How the archive itself was compressed ('none' or 'gzip'). */
    readonly compression: Compression,
    private readonly options: TarArchiveOptions,
  ) {}

  /**
   * Opens and indexes `file`; a gzip archive is first spilled, decompressed, under ctx.tmpDir.
   * `signal` stops the indexing (and a spill in progress) and frees what it took.
   */
  static async open(file: string, ctx: SystemContext, options: TarArchiveOptions, signal: AbortSignal): Promise<TarArchive> {
    signal.throwIfAborted();
    let handle: FileHandle;
    try {
      // The user names the file, so links in its path are followed; O_NONBLOCK keeps a FIFO or a
      // device from blocking the open (and a pool thread with it) before fstat can refuse it.
      handle = await fsp.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
    } catch (err) {
      throw new LayerpipeError(`${clipInput(file)}: ${fileErrorText(err)}`, { cause: err });
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new UnsupportedError(`archive ${JSON.stringify(clipInput(file))} is ${fileKindText(st)}, not a regular file`);
      native.setNonBlocking(handle.fd, false);
      const compression = await sniffCompression(handle, 0, st.size);
      requireGzipOrNone(compression, `archive ${file}`);
      if (compression === 'none') {
        const index = await indexTar(new FileByteSource(handle, st.size), file);
        signal.throwIfAborted();
        return new TarArchive(file, handle, index, compression, options);
      }
      const { spill, index } = await spillGzip(handle, file, ctx.tmpDir, signal);
      await handle.close();
      return new TarArchive(file, spill, index, compression, options);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /** The regular file entry `rel` names, after links. */
  entry(rel: string): TarEntry {
    if (this.closed) throw new LayerpipeError(`archive ${this.file} is closed`);
    return this.index.resolveFile(rel, this.options.maxLinkHops);
  }

  /** Reads a whole small file; refuses one larger than `limit` without reading it. */
  async read(rel: string, limit: number): Promise<Buffer> {
    const e = this.entry(rel);
    if (e.size > limit) throw new UnsupportedError(`${rel} in archive ${this.file} is ${e.size} bytes, more than the ${limit} allowed`);
    return this.readRange(e, 0, e.size);
  }

  /** Reads `length` bytes of an entry from `from`; a short read means the file changed under us. */
  async readRange(e: TarEntry, from: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(Math.min(length, e.size - from));
    let got = 0;
    while (got < out.length) {
      const { bytesRead } = await this.handle.read(out, got, out.length - got, e.offset + from + got);
      if (bytesRead === 0) throw new UnsafeContentError(`archive ${this.file} ended while reading ${e.name}: was it truncated after opening?`);
      got += bytesRead;
    }
    return out;
  }

  /** The bytes of an entry (or of `part` of it, checked by the caller) as a stream read by offset; many may run at once. */
  rangeStream(e: TarEntry, part: ResolvedRange = { start: 0, length: e.size }): Readable {
    if (this.closed) throw new LayerpipeError(`archive ${this.file} is closed`);
    if (part.length === 0) return Readable.from([]);
    const truncated = (): UnsafeContentError => new UnsafeContentError(`archive ${this.file} ended while reading ${e.name}: was it truncated after opening?`);
    const stream = positionalStream(this.handle, e.offset + part.start, part.length, truncated);
    // A pipe copy reads (or splices) the span itself, by offset; the handle stays the archive's.
    return withFileSpan(stream, { fd: this.handle.fd, start: e.offset + part.start, length: part.length, truncated });
  }

  /** The compression of an entry's own bytes (docker-archive layers may be compressed). */
  sniff(e: TarEntry): Promise<Compression> {
    return sniffCompression(this.handle, e.offset, e.size);
  }

  /** LayoutFiles.open: a regular file inside (or a byte range of it), as a stream and its size. */
  async open(rel: string, range?: ByteRange): Promise<OpenedFile> {
    const e = this.entry(rel);
    const part = range === undefined ? { start: 0, length: e.size } : rangeWithin(range, e.size, `${rel} in archive ${this.file}`);
    return { stream: this.rangeStream(e, part), size: part.length };
  }

  /** Closes the descriptor (which frees a spill file). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/**
 * `length` bytes of an open file from `start`, read by position. Not a FileHandle read stream:
 * destroying one of those (a client that stops reading) closes the handle, which every other
 * blob of the archive is read through.
 */
function positionalStream(handle: FileHandle, start: number, length: number, truncated: () => Error): Readable {
  let position = start;
  const end = start + length;
  return new Readable({
    highWaterMark: STREAM_CHUNK,
    read(): void {
      const want = Math.min(STREAM_CHUNK, end - position);
      if (want <= 0) {
        this.push(null);
        return;
      }
      const buffer = Buffer.allocUnsafe(want);
      handle.read(buffer, 0, want, position).then(({ bytesRead }) => {
        if (bytesRead === 0) {
          this.destroy(truncated());
          return;
        }
        position += bytesRead;
        this.push(bytesRead < want ? buffer.subarray(0, bytesRead) : buffer);
        if (position >= end) this.push(null);
      }, (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))));
    },
  });
}

/**
 * Decompresses a gzip archive into an unlinked file under tmpDir, indexing it on the way.
 * Returns the spill file open for reading.
 */
async function spillGzip(archive: FileHandle, file: string, tmpDir: string, signal: AbortSignal): Promise<{ spill: FileHandle; index: TarIndex }> {
  let spill: FileHandle;
  try {
    const dir = await fsp.mkdtemp(path.join(tmpDir, 'layerpipe-archive-'));
    try {
      spill = await fsp.open(path.join(dir, 'archive.tar'), fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  } catch (err) {
    throw new LayerpipeError(`creating a file in ${tmpDir} to decompress archive ${clipInput(file)} into: ${systemErrorText(err)}`, { cause: err });
  }
  try {
    const gunzip = (require('node:zlib') as typeof import('node:zlib')).createGunzip({ chunkSize: SPILL_CHUNK }); // zlib loads with a gzipped archive only
    const input = archive.createReadStream({ start: 0, autoClose: false, highWaterMark: SPILL_CHUNK });
    input.on('error', (err) => gunzip.destroy(err));
    input.pipe(gunzip);
    const source = new SpillingStreamSource(gunzip, spill);
    const onAbort = (): void => {
      gunzip.destroy(signal.reason instanceof Error ? signal.reason : new LayerpipeError('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let index: TarIndex;
    try {
      index = await indexTar(source, file);
      await source.drain();
      signal.throwIfAborted();
    } catch (err) {
      input.destroy();
      gunzip.destroy();
      await source.flush().catch(() => undefined);
      if (signal.aborted) throw signal.reason;
      if (err instanceof LayerpipeError) throw err;
      throw new UnsafeContentError(`decompressing archive ${clipInput(file)}: ${(err as Error).message}`, { cause: err });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return { spill, index };
  } catch (err) {
    await spill.close().catch(() => undefined);
    throw err;
  }
}
