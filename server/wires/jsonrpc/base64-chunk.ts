/**
 * A `transfer/data` chunk on its way out. Node 20's Buffer.toString('base64') builds a string
 * at well under 100 MB/s on the project machine, which capped stream payloads; the writer lays
 * the base64 out straight into the message's bytes instead (encodeInto), several times faster.
 * Anything else that serialises it (JSON.stringify) gets the usual string through toJSON().
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const PAD = 0x3d; // '='

/** Two base64 characters for every 12-bit value, as one little-endian pair. */
function pairTable(): Uint16Array {
  const table = new Uint16Array(4096);
  for (let v = 0; v < 4096; v++) table[v] = ALPHABET.charCodeAt(v >> 6) | (ALPHABET.charCodeAt(v & 63) << 8);
  return table;
}

export class Base64Chunk {
  private static pairs: Uint16Array | undefined;

  constructor(readonly bytes: Buffer) {}

  /** Length of the encoding, padding included. */
  get encodedLength(): number {
    return Math.ceil(this.bytes.length / 3) * 4;
  }

  toJSON(): string {
    return this.bytes.toString('base64');
  }

  /** Writes the encoding into `out` at `at`; returns the offset after it. */
  encodeInto(out: Uint8Array, at: number): number {
    const pairs = (Base64Chunk.pairs ??= pairTable());
    const src = this.bytes;
    const n = src.length;
    let i = 0;
    let o = at;
    for (; i + 2 < n; i += 3) {
      const v = (src[i]! << 16) | (src[i + 1]! << 8) | src[i + 2]!;
      const high = pairs[v >> 12]!;
      const low = pairs[v & 4095]!;
      out[o] = high & 255;
      out[o + 1] = high >> 8;
      out[o + 2] = low & 255;
      out[o + 3] = low >> 8;
      o += 4;
    }
    if (i < n) {
      const two = i + 1 < n;
      const v = (src[i]! << 16) | ((two ? src[i + 1]! : 0) << 8);
      out[o] = ALPHABET.charCodeAt(v >> 18);
      out[o + 1] = ALPHABET.charCodeAt((v >> 12) & 63);
      out[o + 2] = two ? ALPHABET.charCodeAt((v >> 6) & 63) : PAD;
      out[o + 3] = PAD;
      o += 4;
    }
    return o;
  }
}
