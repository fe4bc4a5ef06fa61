/**
 * Content digests ("sha256:<hex>"): strict parsing, hashing, and a pass-through stream that
 * verifies length and digest as bytes flow.
 */
import type { Hash } from 'node:crypto';
import { clipInput, DigestMismatchError, InvalidArgumentError } from '../../protocol/errors';

/** node:crypto loads with the first digest computed, not with the many modules that parse digests. */
function createHash(algorithm: string): Hash {
  return (require('node:crypto') as typeof import('node:crypto')).createHash(algorithm);
}

/** Algorithms go-digest accepts, with their hex lengths. */
const ALGORITHMS: Readonly<Record<string, { hexLength: number; nodeName: string }>> = {
  sha256: { hexLength: 64, nodeName: 'sha256' },
  sha384: { hexLength: 96, nodeName: 'sha384' },
  sha512: { hexLength: 128, nodeName: 'sha512' },
};

export interface ParsedDigest {
  readonly algorithm: string;
  readonly hex: string;
  /** algorithm:hex */
  readonly value: string;
}

/**
 * Parses a digest, refusing anything but a known algorithm and lowercase hex of the right
 * length: this is what keeps "sha256:../../x" from ever becoming a path.
 */
export function parseDigest(value: string): ParsedDigest {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new InvalidArgumentError(`invalid checksum digest format: ${JSON.stringify(clipInput(value))}`);
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  const spec = ALGORITHMS[algorithm];
  if (spec === undefined) {
    throw new InvalidArgumentError(`unsupported digest algorithm: ${JSON.stringify(clipInput(value))}`);
  }
  if (hex.length !== spec.hexLength || !/^[a-f0-9]+$/.test(hex)) {
    throw new InvalidArgumentError(`invalid checksum digest format: ${JSON.stringify(clipInput(value))}`);
  }
  return { algorithm, hex, value };
}

export function isValidDigest(value: string): boolean {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Digest of data with the algorithm of `like`. */
function digestOf(data: Buffer, like: ParsedDigest): string {
  return `${like.algorithm}:${createHash(ALGORITHMS[like.algorithm]!.nodeName).update(data).digest('hex')}`;
}

/** Throws DigestMismatchError unless data hashes to the digest. */
export function verifyBytes(data: Buffer, digest: string, what: string): void {
  const parsed = parseDigest(digest);
  if (digestOf(data, parsed) !== parsed.value) {
    throw new DigestMismatchError(`${what}: content does not match digest ${parsed.value}`);
  }
}

/**
 * Checks a blob's length and digest as its chunks go by. take() hands back the part of a chunk
 * that fits the expected size, so a client reading exactly `size` bytes always gets them all
 * before the error is reported; finish() checks what was seen.
 */
export class BlobVerifier {
  /** Made on first take(): bytes hashed elsewhere need none. */
  private hash: Hash | undefined;
  private bytes = 0;
  constructor(
    private readonly digest: ParsedDigest,
    private readonly expectedSize: number,
  ) {}

  /** The bytes of `chunk` to deliver, and whether the blob ran past its expected size. */
  take(chunk: Buffer): { part: Buffer; overflow: boolean } {
    let part = chunk;
    let overflow = false;
    if (this.expectedSize >= 0 && this.bytes + chunk.length > this.expectedSize) {
      part = chunk.subarray(0, this.expectedSize - this.bytes);
      overflow = true;
    }
    this.bytes += part.length;
    this.hash ??= createHash(this.algorithm);
    this.hash.update(part);
    return { part, overflow };
  }

  /** The digest's algorithm as OpenSSL names it, for bytes hashed elsewhere (the pipe copy). */
  get algorithm(): string {
    return ALGORITHMS[this.digest.algorithm]!.nodeName;
  }

  /** How many more bytes fit the expected size (Infinity when it is unknown). */
  get room(): number {
    return this.expectedSize >= 0 ? this.expectedSize - this.bytes : Infinity;
  }

  /** take() for bytes hashed elsewhere: how many of `length` to deliver, and whether the blob ran past its size. */
  count(length: number): { length: number; overflow: boolean } {
    const fits = Math.min(length, this.room);
    this.bytes += fits;
    return { length: fits, overflow: fits < length };
  }

  /** finish() for bytes hashed elsewhere, `hex` being their digest. */
  finishHashed(hex: string): void {
    this.checkSize();
    if (`${this.digest.algorithm}:${hex}` !== this.digest.value) throw new DigestMismatchError(`corrupted blob, expecting ${this.digest.value}`);
  }

  overflowError(): DigestMismatchError {
    return new DigestMismatchError(`expected ${this.expectedSize} bytes in blob, got more`);
  }

  private checkSize(): void {
    if (this.expectedSize >= 0 && this.bytes !== this.expectedSize) {
      throw new DigestMismatchError(`expected ${this.expectedSize} bytes in blob, got ${this.bytes}`);
    }
  }

  /** Throws DigestMismatchError on a short blob or a wrong digest. */
  finish(): void {
    this.checkSize();
    this.hash ??= createHash(this.algorithm);
    const actual = `${this.digest.algorithm}:${this.hash.digest('hex')}`;
    if (actual !== this.digest.value) throw new DigestMismatchError(`corrupted blob, expecting ${this.digest.value}`);
  }
}
