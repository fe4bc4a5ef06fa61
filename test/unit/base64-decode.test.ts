/** The addon's strict base64 decoder against Node's encoder, and what it refuses (where). */
import { strict as assert } from 'node:assert';
import { randomBytes, randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { native } from '../../protocol/seqpacket/native';

/** Decodes `text` placed at an offset inside a larger buffer, into another at an offset. */
function decodeInside(text: string): { written: number; bytes: Buffer } {
  const src = Buffer.from(`##${text}##`, 'latin1');
  const dst = Buffer.alloc(text.length + 8, 0xee);
  const written = native.base64Decode(src, 2, src.length - 2, dst, 3);
  return { written, bytes: dst.subarray(3, 3 + Math.max(written, 0)) };
}

describe('native base64Decode', () => {
  it('gives back the bytes of every length, whatever the padding', () => {
    const lengths = [...Array.from({ length: 70 }, (_, i) => i), 65_535, 131_072, 262_143, ...Array.from({ length: 20 }, () => randomInt(1, 400_000))];
    for (const length of lengths) {
      const bytes = randomBytes(length);
      const { written, bytes: decoded } = decodeInside(bytes.toString('base64'));
      assert.equal(written, length, `length ${length}`);
      assert.deepEqual(decoded, bytes, `length ${length}`);
    }
  });

  it('writes exactly the decoded bytes, nothing past them', () => {
    const src = Buffer.from('aGk=', 'latin1'); // "hi"
    const dst = Buffer.alloc(4, 0xee);
    assert.equal(native.base64Decode(src, 0, 4, dst, 1), 2);
    assert.deepEqual([...dst], [0xee, 0x68, 0x69, 0xee]);
  });

  it('names the first byte that makes the text invalid', () => {
    const cases: ReadonlyArray<[string, number]> = [
      ['Zm9v!A==', 4], // not in the alphabet
      ['Zm9vYmFy-_==', 8], // base64url is not standard base64
      ['Zg==Zg==', 2], // padding before the end
      ['A===', 1],
      ['AB=A', 2], // a byte after padding
      ['Zh==', 1], // bits under the padding are not zero: not canonical
      ['Zm9=', 2],
      ['Zm9', 0], // not a whole quad: where the incomplete quad starts
      ['Zm9vY', 4],
      ['Zm9v\nYmF', 4], // no line breaks
      ['Zm9vYmF\u00ff', 7],
    ];
    for (const [text, bad] of cases) assert.equal(decodeInside(text).written, -(2 + bad) - 1, JSON.stringify(text));
    assert.equal(decodeInside('').written, 0);
  });

  it('refuses bounds outside the source and a destination without room', () => {
    const text = Buffer.from('aGVsbG8=', 'latin1'); // "hello"
    assert.throws(() => native.base64Decode(text, 4, 2, Buffer.alloc(8), 0), RangeError);
    assert.throws(() => native.base64Decode(text, 0, 9, Buffer.alloc(8), 0), RangeError);
    assert.throws(() => native.base64Decode(text, 0, 8, Buffer.alloc(4), 0), RangeError);
    assert.throws(() => native.base64Decode(text, 0, 8, Buffer.alloc(8), 4), RangeError);
    assert.throws(() => native.base64Decode('aGVsbG8=' as unknown as Uint8Array, 0, 8, Buffer.alloc(8), 0), TypeError);
    assert.equal(native.base64Decode(text, 0, 8, Buffer.alloc(5), 0), 5);
  });
});
