/**
 * A `transfer/data` chunk on its way out. Node 20's Buffer.toString('base64') builds a string
 * at well under 100 MB/s on the project machine, which capped stream payloads; the writer has
 * the native addon lay the base64 out straight into the message's bytes instead (encodeInto).
 * Anything else that serialises it (JSON.stringify) gets the usual string through toJSON().
 */
import { native } from '../../../protocol/seqpacket/native';

export class Base64Chunk {
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
    return native.base64Encode(this.bytes, out, at);
  }
}
