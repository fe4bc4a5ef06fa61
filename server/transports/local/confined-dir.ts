/**
 * Read access to files below one directory and nowhere else: the guard that oci: and dir:
 * share. A relative path is checked lexically, then the real path of what it names (after
 * symlinks) must still lie below the directory's real path.
 */
import { promises as fsp, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BlobNotFoundError, UnsafeContentError, UnsupportedError } from '../../../protocol/errors';

export interface OpenedFile {
  readonly stream: Readable;
  readonly size: number;
}

export class ConfinedDirectory {
  private realRoot: Promise<string> | undefined;

  constructor(readonly root: string) {}

  private rootRealPath(): Promise<string> {
    this.realRoot ??= fsp.realpath(this.root);
    return this.realRoot;
  }

  /** The absolute path of `rel`, after checking it stays inside. Throws BlobNotFoundError when absent. */
  async resolve(rel: string): Promise<string> {
    const normalized = path.posix.normalize(rel);
    if (path.isAbsolute(rel) || normalized.startsWith('../') || normalized === '..' || rel.includes('\0')) {
      throw new UnsafeContentError(`path ${JSON.stringify(rel)} leaves ${this.root}`);
    }
    const root = await this.rootRealPath();
    let real: string;
    try {
      real = await fsp.realpath(path.join(root, normalized));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BlobNotFoundError(`${path.join(this.root, normalized)}: no such file or directory`);
      }
      throw err;
    }
    if (real !== root && !real.startsWith(root + path.sep)) {
      throw new UnsafeContentError(`${path.join(this.root, normalized)} points outside ${this.root}`);
    }
    return real;
  }

  /** Opens a regular file inside the directory for streaming. */
  async open(rel: string): Promise<OpenedFile> {
    const real = await this.resolve(rel);
    const handle = await fsp.open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new UnsafeContentError(`${path.join(this.root, rel)} is not a regular file`);
      // The stream owns the handle from here and closes it at end or destroy.
      const stream = handle.createReadStream({ highWaterMark: 128 * 1024 });
      return { stream, size: st.size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Reads a whole small file, refusing more than `limit` bytes. */
  async read(rel: string, limit: number): Promise<Buffer> {
    const real = await this.resolve(rel);
    const handle = await fsp.open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new UnsafeContentError(`${path.join(this.root, rel)} is not a regular file`);
      if (st.size > limit) throw new UnsupportedError(`${path.join(this.root, rel)} is larger than ${limit} bytes`);
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }
}
