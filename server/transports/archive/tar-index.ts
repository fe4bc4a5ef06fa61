/**
 * An index of a tar archive: entry name -> where its bytes lie, built in one pass over the
 * headers with tar-stream's parser, so blobs can later be served as byte ranges of the file.
 *
 * tar-stream's extractor wants every byte of the archive, but it only looks at header blocks;
 * entry bodies are passed through untouched. So the walker reads the header blocks from the
 * archive and hands the parser placeholder zeros for each body: on a seekable file the bodies
 * are never read, and indexing a 1 GiB archive costs a few hundred small reads.
 *
 * Hostile input is refused here, once, for the whole archive: absolute names, names with a
 * ".." component, links that point outside the archive, duplicate names, truncation, and
 * more entries or longer names than any image archive needs (memory stays bounded).
 */
import path from 'node:path';
import type { Extract, Header } from 'tar-stream';
import { BlobNotFoundError, LayerpipeError, UnsafeContentError } from '../../../protocol/errors';

/** Most entries indexed: docker save of a 500-layer image has about 2,000. */
const MAX_ENTRIES = 100_000;
/** Longest entry or link name accepted (PATH_MAX). */
const MAX_NAME_LENGTH = 4096;
/** Total bytes of names kept, so the index stays small whatever the archive holds. */
const MAX_NAME_BYTES = 16 * 1024 * 1024;

const BLOCK = 512;
/** Placeholder bytes fed to the parser in place of entry bodies. Never written to. */
const PLACEHOLDER = Buffer.alloc(1024 * 1024);

export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  /** Cleaned name: relative, no "." or ".." components, no trailing slash. */
  readonly name: string;
  readonly type: EntryType;
  /** Offset of the body in the (uncompressed) archive. */
  readonly offset: number;
  readonly size: number;
  /** For links: the entry they name, as a cleaned archive-relative name; '' otherwise. */
  readonly target: string;
}

/** Sequential bytes of an uncompressed archive: a file read by offset, or a decompressing stream. */
export interface TarByteSource {
  /** The next `length` bytes; fewer only at the end of the archive. */
  read(length: number): Promise<Buffer>;
  /** Passes over `length` bytes without returning them; false when the archive ends first. */
  skip(length: number): Promise<boolean>;
}

/** The archive is not a well-formed tar (truncated, bad header, too many entries). */
function malformed(where: string, what: string, cause?: unknown): UnsafeContentError {
  return new UnsafeContentError(`invalid tar archive ${where}: ${what}`, cause === undefined ? undefined : { cause });
}

/**
 * Cleans an archive-relative name, or returns undefined when it is absolute or has a ".."
 * component (both refused by callers, with their own wording). "." stands for the root.
 */
function cleanArchiveName(raw: string): string | undefined {
  if (raw.startsWith('/') || raw.includes('\0')) return undefined;
  if (raw.split('/').includes('..')) return undefined;
  const normalized = path.posix.normalize(raw).replace(/\/+$/, '');
  return normalized === '' ? '.' : normalized;
}

function entryType(header: Header): EntryType {
  switch (header.type) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    default:
      return 'other';
  }
}

/** The entries of one archive, by cleaned name. */
export class TarIndex {
  private readonly entries = new Map<string, TarEntry>();
  private nameBytes = 0;

  constructor(readonly where: string) {}

  get size(): number {
    return this.entries.size;
  }

  get(name: string): TarEntry | undefined {
    return this.entries.get(name);
  }

  /** Records an entry read from a header, refusing the archive when it is unsafe. */
  add(header: Header, offset: number): void {
    const rawName = header.name;
    const name = cleanArchiveName(rawName);
    if (name === undefined) throw new UnsafeContentError(`archive ${this.where}: entry ${JSON.stringify(rawName)} has an unsafe name (absolute or with "..")`);
    if (rawName.length > MAX_NAME_LENGTH || (header.linkname ?? '').length > MAX_NAME_LENGTH) {
      throw malformed(this.where, `entry name longer than ${MAX_NAME_LENGTH} characters`);
    }
    const type = entryType(header);
    if (!Number.isSafeInteger(header.size) || header.size < 0) throw malformed(this.where, `entry ${JSON.stringify(name)} has an invalid size`);
    if ((type === 'symlink' || type === 'hardlink') && header.size > 0) {
      throw malformed(this.where, `link ${JSON.stringify(name)} carries ${header.size} bytes of data`);
    }
    const target = type === 'symlink' || type === 'hardlink' ? this.linkTarget(name, type, header.linkname ?? '') : '';
    const existing = this.entries.get(name);
    if (existing !== undefined) {
      if (existing.type === 'directory' && type === 'directory') return;
      throw new UnsafeContentError(`archive ${this.where}: more than one entry named ${JSON.stringify(name)}`);
    }
    if (this.entries.size >= MAX_ENTRIES) throw malformed(this.where, `more than ${MAX_ENTRIES} entries`);
    this.nameBytes += name.length + target.length;
    if (this.nameBytes > MAX_NAME_BYTES) throw malformed(this.where, `entry names total more than ${MAX_NAME_BYTES} bytes`);
    this.entries.set(name, { name, type, offset, size: type === 'directory' ? 0 : header.size, target });
  }

  /** A link's target as an archive name; refuses targets outside the archive. */
  private linkTarget(name: string, type: 'symlink' | 'hardlink', linkname: string): string {
    const outside = () =>
      new UnsafeContentError(`archive ${this.where}: ${type === 'symlink' ? 'symbolic' : 'hard'} link ${JSON.stringify(name)} points outside the archive (${JSON.stringify(linkname)})`);
    if (linkname === '' || linkname.startsWith('/')) throw outside();
    // A symlink is relative to its directory; a hard link names an entry from the root.
    const joined = type === 'symlink' ? path.posix.normalize(path.posix.join(path.posix.dirname(name), linkname)) : path.posix.normalize(linkname);
    if (type === 'hardlink' && linkname.split('/').includes('..')) throw outside();
    if (joined === '..' || joined.startsWith('../') || joined.startsWith('/')) throw outside();
    return joined.replace(/\/+$/, '') || '.';
  }

  /**
   * The regular file `name` stands for, following at most `maxHops` links within the archive.
   * Throws BlobNotFoundError when nothing has that name, UnsafeContentError for names outside
   * the archive, link loops and entries that are not regular files.
   */
  resolveFile(name: string, maxHops: number): TarEntry {
    const start = cleanArchiveName(name);
    if (start === undefined) throw new UnsafeContentError(`${JSON.stringify(name)} names a file outside archive ${this.where}`);
    let current = start;
    for (let hops = 0; ; hops++) {
      const entry = this.entries.get(current);
      if (entry === undefined) {
        const via = current === start ? '' : ` (reached from ${JSON.stringify(start)})`;
        throw new BlobNotFoundError(`file ${JSON.stringify(current)}${via} not found in archive ${this.where}`);
      }
      if (entry.type === 'file') return entry;
      if (entry.type !== 'symlink' && entry.type !== 'hardlink') {
        throw new UnsafeContentError(`${JSON.stringify(current)} in archive ${this.where} is not a regular file`);
      }
      if (hops >= maxHops) throw new UnsafeContentError(`${JSON.stringify(start)} in archive ${this.where}: too many levels of links`);
      current = entry.target;
    }
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/** Feeds an extractor and waits until it has digested each piece, surfacing its errors. */
class ParserFeed {
  private failure: Error | undefined;
  private readonly waiters = new Set<(err?: Error) => void>();

  constructor(private readonly parser: Extract) {
    parser.on('error', (err: Error) => {
      this.failure ??= err;
      for (const wake of this.waiters) wake(err);
    });
    parser.on('drain', () => {
      for (const wake of this.waiters) wake();
    });
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /** Writes and resolves once the parser has consumed the bytes (highWaterMark 1 makes every write wait). */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.parser.write(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      const wake = (err?: Error) => {
        this.waiters.delete(wake);
        if (err !== undefined) reject(err);
        else resolve();
      };
      this.waiters.add(wake);
    });
  }

  async end(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    await new Promise<void>((resolve, reject) => {
      this.parser.once('finish', () => resolve());
      this.parser.once('error', reject);
      this.parser.end(null);
    });
  }
}

/**
 * Walks an archive's headers and returns its index. Stops at the end-of-archive marker (two
 * zero blocks) or at the end of the data; anything that does not parse is refused.
 */
export async function indexTar(source: TarByteSource, where: string): Promise<TarIndex> {
  const index = new TarIndex(where);
  // tar-stream (and streamx with it) loads at the first archive, not with every image's open path.
  const { extract } = require('tar-stream') as typeof import('tar-stream');
  const parser = extract({ highWaterMark: 1 });
  const feed = new ParserFeed(parser);
  /** Bytes handed to the parser so far: the archive offset of the next byte. */
  let fed = 0;
  /** End of the body (with padding) of the entry just announced. */
  let bodyEnd = 0;
  let indexError: unknown;

  parser.on('entry', (header, body, next) => {
    body.on('end', () => next());
    body.resume();
    if (indexError !== undefined) return;
    try {
      const offset = body.offset + BLOCK; // body.offset is where this entry's own header starts
      if (offset !== fed) throw new LayerpipeError(`internal error indexing ${where}: entry body at ${offset}, parser at ${fed}`);
      index.add(header, offset);
      const hasBody = header.type !== 'directory' && header.size > 0;
      bodyEnd = hasBody ? offset + Math.ceil(header.size / BLOCK) * BLOCK : offset;
    } catch (err) {
      indexError = err;
    }
  });

  try {
    let zeroBlocks = 0;
    for (;;) {
      if (indexError !== undefined) throw indexError;
      if (bodyEnd > fed) {
        if (!(await source.skip(bodyEnd - fed))) throw malformed(where, "truncated: an entry's data runs past the end of the archive");
        while (fed < bodyEnd) {
          const n = Math.min(PLACEHOLDER.length, bodyEnd - fed);
          fed += n;
          await feed.write(PLACEHOLDER.subarray(0, n));
        }
        continue;
      }
      const block = await source.read(BLOCK);
      if (block.length === 0) break;
      if (block.length < BLOCK) throw malformed(where, 'truncated: the archive ends inside a header');
      if (isZeroBlock(block)) {
        if (++zeroBlocks === 2) break;
      } else {
        zeroBlocks = 0;
      }
      fed += BLOCK;
      await feed.write(block);
    }
    if (indexError !== undefined) throw indexError;
    await feed.end();
  } catch (err) {
    parser.destroy();
    // The parser's own complaints (bad checksum, unexpected end) describe the archive; errors
    // from reading it (I/O, decompression) are passed on as they are.
    if (err !== undefined && err === feed.error) throw malformed(where, (err as Error).message, err);
    throw err;
  }
  return index;
}
