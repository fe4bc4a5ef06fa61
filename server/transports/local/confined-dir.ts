/**
 * Read access to files below one directory and nowhere else: the guard that oci: and dir:
 * share.
 *
 * The directory is opened once, when the image is opened, and every file is then opened
 * relative to that descriptor by the native addon (openBeneath): openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it, else an openat(O_NOFOLLOW)
 * walk. Checking a real path and then opening by name would race with anyone able to swap a
 * directory on the way for a symlink; this cannot.
 *
 * Symbolic links below the directory are never followed, even to a file inside it: a link's
 * target can change between any check and the open, so only the kernel's no-symlink lookup is
 * safe. (containers/image follows them, wherever they go.) The directory's own path, as the
 * client names it, may contain links. Anything but a regular file (a FIFO, a device, a
 * socket, a directory) is refused before a byte is read, and opening it cannot block.
 */
import { close as closeFd, createReadStream, promises as fsp, read as readFd } from 'node:fs';
import { Readable } from 'node:stream';
import {
  BlobNotFoundError, CancelledError, clipInput, InvalidArgumentError, LayerpipeError, UnsafeContentError, UnsupportedError, systemCode,
  systemErrorText,
} from '../../../protocol/errors';
import { rangeWithin, type ByteRange, type ResolvedRange } from '../../image/range';
import { withFileSpan } from '../../transfer/file-span';
import { native, type BeneathFile, type BeneathResolver, type FileKind } from '../../../protocol/seqpacket/native';

export interface OpenedFile {
  readonly stream: Readable;
  readonly size: number;
}

/** The resolver openBeneath uses unless told: LAYERPIPE_NO_OPENAT2=1 forces the openat walk (for tests). */
export function defaultResolver(env: NodeJS.ProcessEnv = process.env): BeneathResolver {
  const v = env.LAYERPIPE_NO_OPENAT2;
  return v !== undefined && v !== '' && v !== '0' ? 'walk' : 'auto';
}

const STREAM_CHUNK = 128 * 1024;

const KIND_TEXT: Readonly<Record<FileKind, string>> = {
  file: 'a regular file',
  directory: 'a directory',
  fifo: 'a FIFO',
  'character-device': 'a character device',
  'block-device': 'a block device',
  socket: 'a socket',
  symlink: 'a symbolic link',
  other: 'a special file',
};

function readAt(fd: number, buffer: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => {
    readFd(fd, buffer, offset, length, null, (err, n) => (err === null ? resolve(n) : reject(err)));
  });
}

function closeQuietly(fd: number): Promise<void> {
  return new Promise((resolve) => closeFd(fd, () => resolve()));
}

export class ConfinedDirectory {
  /** openBeneath calls in flight: the directory fd is closed only once none uses it. */
  private pending = 0;
  private closed = false;
  private released = false;

  private constructor(
    private readonly dirFd: number,
    /** The directory as the client named it: the only path error messages show. */
    readonly label: string,
    private readonly resolver: BeneathResolver,
  ) {}

  /** Opens `dir` (relative to the working directory, links in it followed) for the image's lifetime. */
  static async open(dir: string, resolver: BeneathResolver = defaultResolver()): Promise<ConfinedDirectory> {
    let fd: number;
    try {
      fd = await native.openDirectory(dir);
    } catch (err) {
      const code = systemCode(err);
      if (code === 'ENOENT') throw new InvalidArgumentError(`${clipInput(dir)}: no such directory`, { cause: err });
      if (code === 'ENOTDIR') throw new InvalidArgumentError(`${clipInput(dir)}: not a directory`, { cause: err });
      throw new LayerpipeError(`${clipInput(dir)}: ${systemErrorText(err)}`, { cause: err });
    }
    return new ConfinedDirectory(fd, dir, resolver);
  }

  /** How `rel` is shown in messages: under the directory's name as the client wrote it. */
  private shown(rel: string): string {
    let end = this.label.length;
    while (end > 0 && this.label[end - 1] === '/') end--; // a loop: /\/+$/ is quadratic on hostile input
    return `${clipInput(this.label.slice(0, end))}/${rel}`;
  }

  /** Opens `rel` as a regular file: the caller owns the returned descriptor. */
  private async openFile(rel: string): Promise<BeneathFile> {
    if (this.closed) throw new CancelledError(`${this.label} is closed`);
    if (rel.startsWith('/') || rel.split('/').includes('..') || rel.includes('\0')) {
      throw new UnsafeContentError(`path ${JSON.stringify(rel.slice(0, 80))} leaves ${this.label}`);
    }
    this.pending++;
    try {
      let file: BeneathFile;
      try {
        file = await native.openBeneath(this.dirFd, rel, this.resolver);
      } catch (err) {
        throw await this.describe(err, rel);
      }
      if (this.closed) {
        if (file.fd >= 0) await closeQuietly(file.fd);
        throw new CancelledError(`${this.label} is closed`);
      }
      if (file.kind !== 'file') throw new UnsafeContentError(`${this.shown(rel)} is ${KIND_TEXT[file.kind]}, not a regular file`);
      return file;
    } finally {
      this.pending--;
      this.releaseIfDone();
    }
  }

  /** The typed error for a failed openBeneath. */
  private async describe(err: unknown, rel: string): Promise<Error> {
    const shown = this.shown(rel);
    switch (systemCode(err)) {
      case 'ENOENT':
        return new BlobNotFoundError(`${shown}: no such file or directory`, { cause: err });
      case 'ENOTDIR':
        return new BlobNotFoundError(`${shown}: a component of the path is not a directory`, { cause: err });
      case 'ELOOP': {
        const where = await this.linkLeaves(rel);
        const why = where === 'outside' ? `points outside ${this.label}` : where === 'inside' ? `is refused: links are not followed inside ${this.label}` : 'is refused';
        return new UnsafeContentError(`${shown}: a symbolic link on the path ${why}`, { cause: err });
      }
      case 'EXDEV':
        return new UnsafeContentError(`${shown} points outside ${this.label}`, { cause: err });
      case 'ENXIO':
      case 'ENODEV':
        return new UnsafeContentError(`${shown} is not a regular file`, { cause: err });
      case 'EACCES':
      case 'EPERM':
        return new LayerpipeError(`${shown}: permission denied`, { cause: err });
      default:
        return new LayerpipeError(`${shown}: ${systemErrorText(err)}`, { cause: err });
    }
  }

  /**
   * For the message only, after a symlink was refused: does it lead out of the directory? The
   * answer may be stale by the time it is given; nothing is read either way.
   */
  private async linkLeaves(rel: string): Promise<'inside' | 'outside' | undefined> {
    const base = `/proc/self/fd/${this.dirFd}`;
    try {
      const [root, target] = await Promise.all([fsp.realpath(base), fsp.realpath(`${base}/${rel}`)]);
      return target === root || target.startsWith(`${root}/`) ? 'inside' : 'outside';
    } catch {
      return undefined;
    }
  }

  /** Opens a regular file inside the directory for streaming, whole or a byte range of it. */
  async open(rel: string, range?: ByteRange): Promise<OpenedFile> {
    const file = await this.openFile(rel);
    let part: ResolvedRange;
    try {
      part = range === undefined ? { start: 0, length: file.size } : rangeWithin(range, file.size, this.shown(rel));
    } catch (err) {
      await closeQuietly(file.fd);
      throw err;
    }
    if (part.length === 0 && range !== undefined) {
      await closeQuietly(file.fd);
      return { stream: Readable.from([]), size: 0 };
    }
    // The stream owns the descriptor from here and closes it at its end or when destroyed. A
    // whole file is read to its end (it may have grown: the verifier reports that); a range stops at its own.
    const end = range === undefined ? undefined : part.start + part.length - 1;
    const stream = createReadStream('', { fd: file.fd, autoClose: true, start: part.start, end, highWaterMark: STREAM_CHUNK });
    // A pipe copy reads (or splices) the span itself, by offset.
    return { stream: withFileSpan(stream, { fd: file.fd, start: part.start, length: end === undefined ? undefined : part.length }), size: part.length };
  }

  /** Reads a whole small file, refusing more than `limit` bytes (also if it grows while read). */
  async read(rel: string, limit: number): Promise<Buffer> {
    const file = await this.openFile(rel);
    try {
      const tooLarge = () => new UnsupportedError(`${this.shown(rel)} is larger than ${limit} bytes`);
      if (file.size > limit) throw tooLarge();
      // One byte more than expected shows a file that grew since fstat; grow up to limit + 1.
      let buffer = Buffer.alloc(Math.min(file.size, limit) + 1);
      let got = 0;
      for (;;) {
        if (got === buffer.length) {
          if (got > limit) throw tooLarge();
          const bigger = Buffer.alloc(Math.min(buffer.length * 2, limit + 1));
          buffer.copy(bigger);
          buffer = bigger;
        }
        const n = await readAt(file.fd, buffer, got, buffer.length - got);
        if (n === 0) break;
        got += n;
      }
      return buffer.subarray(0, got);
    } finally {
      await closeQuietly(file.fd);
    }
  }

  /** Closes the directory descriptor once no open is using it. Idempotent; files already open stay readable. */
  async close(): Promise<void> {
    this.closed = true;
    this.releaseIfDone();
  }

  private releaseIfDone(): void {
    if (!this.closed || this.released || this.pending > 0) return;
    this.released = true;
    native.close(this.dirFd);
  }
}
