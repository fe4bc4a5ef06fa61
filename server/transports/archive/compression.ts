/**
 * Recognising compressed streams by their first bytes, as containers/image does for archives
 * and for layer tars inside docker-archive files. Node's zlib decompresses gzip only (zstd
 * arrives in Node 22.15), so the other formats are recognised in order to refuse them clearly.
 */
import type { FileHandle } from 'node:fs/promises';
import { UnsupportedError } from '../../../protocol/errors';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

const MAGIC: ReadonlyArray<readonly [Exclude<Compression, 'none'>, readonly number[]]> = [
  ['gzip', [0x1f, 0x8b, 0x08]],
  ['bzip2', [0x42, 0x5a, 0x68]], // "BZh"
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
];

/** Bytes needed to tell the formats apart. */
const SNIFF_LENGTH = 6;

function detectCompression(head: Buffer): Compression {
  for (const [name, magic] of MAGIC) {
    if (head.length >= magic.length && magic.every((byte, i) => head[i] === byte)) return name;
  }
  return 'none';
}

/** Reads the first bytes at `offset` of an open file and names their compression. */
export async function sniffCompression(handle: FileHandle, offset: number, available: number): Promise<Compression> {
  const head = Buffer.alloc(Math.min(SNIFF_LENGTH, available));
  if (head.length === 0) return 'none';
  const { bytesRead } = await handle.read(head, 0, head.length, offset);
  return detectCompression(head.subarray(0, bytesRead));
}

/** Refuses what Node cannot decompress, naming the thing and the format. */
export function requireGzipOrNone(compression: Compression, what: string): void {
  if (compression === 'none' || compression === 'gzip') return;
  throw new UnsupportedError(`${what} is compressed with ${compression}; layerpipe reads uncompressed or gzip-compressed data only`);
}
