/** The in-band chunk encoder against Node's own base64, for every tail length and random bytes. */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Base64Chunk } from '../../server/wires/jsonrpc/base64-chunk';
import { serializeMessage } from '../../server/wires/jsonrpc/writer';

describe('Base64Chunk', () => {
  it('encodes as Buffer.toString("base64") does, whatever the length', () => {
    // Every length up to 64 covers each way the encoder's six-byte steps and tail can meet.
    const lengths = [...Array.from({ length: 65 }, (_, i) => i), 255, 256, 257, 65_535, 131_072, 262_143];
    for (const length of lengths) {
      const bytes = randomBytes(length);
      const chunk = new Base64Chunk(bytes);
      const out = Buffer.alloc(chunk.encodedLength + 2, '*');
      const end = chunk.encodeInto(out, 1);
      assert.equal(end, 1 + chunk.encodedLength, `length ${length}`);
      assert.equal(out.subarray(1, end).toString('latin1'), bytes.toString('base64'), `length ${length}`);
      assert.equal(out.toString('latin1', 0, 1) + out.toString('latin1', end), '**', `length ${length}: nothing written outside the encoding`);
      assert.equal(JSON.stringify({ data: chunk }), JSON.stringify({ data: bytes.toString('base64') }));
    }
  });

  it('makes transfer/data messages that parse to the bytes sent', () => {
    const bytes = randomBytes(100_001);
    const message = serializeMessage({ jsonrpc: '2.0', method: 'transfer/data', params: { transfer: 7, data: new Base64Chunk(bytes) } } as never);
    const parsed = JSON.parse(message.toString('utf8')) as { method: string; params: { transfer: number; data: string } };
    assert.equal(parsed.method, 'transfer/data');
    assert.equal(parsed.params.transfer, 7);
    assert.deepEqual(Buffer.from(parsed.params.data, 'base64'), bytes);
  });
});

describe('native base64Encode', () => {
  it('refuses a destination without room, and non-byte arguments', async () => {
    const { native } = await import('../../protocol/seqpacket/native');
    assert.throws(() => native.base64Encode(Buffer.alloc(3), Buffer.alloc(3), 0), RangeError);
    assert.throws(() => native.base64Encode(Buffer.alloc(3), Buffer.alloc(8), 5), RangeError);
    assert.throws(() => native.base64Encode('abc' as unknown as Uint8Array, Buffer.alloc(8), 0), TypeError);
    assert.equal(native.base64Encode(Buffer.from('hi'), Buffer.alloc(8), 4), 8);
  });
});
