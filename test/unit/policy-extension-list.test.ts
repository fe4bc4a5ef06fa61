/**
 * Parsing the registry signature extension's list (server/transports/docker/signature-extension.ts):
 * what containers/image keeps (schemaVersion 2, type "atomic"), what it skips, and the bodies
 * refused with a reason instead of a crash.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { UnsafeContentError } from '../../protocol/errors';
import { parseSignatureList } from '../../server/transports/docker/signature-extension';

const body = (doc: unknown) => Buffer.from(JSON.stringify(doc));
const entry = (content: string, extra: Record<string, unknown> = {}) => ({ schemaVersion: 2, type: 'atomic', name: 'sha256:x@1', content: Buffer.from(content).toString('base64'), ...extra });

describe('signature extension list', () => {
  it('keeps schemaVersion 2 "atomic" entries, in order, decoded', () => {
    const sigs = parseSignatureList(body({ signatures: [entry('one'), entry('two')] }), 'r');
    assert.deepEqual(sigs.map((s) => s.toString()), ['one', 'two']);
  });

  it('skips other versions and types, and null entries; null or missing lists are empty', () => {
    assert.deepEqual(parseSignatureList(body({ signatures: [entry('a', { schemaVersion: 1 }), entry('b', { type: 'other' }), null] }), 'r'), []);
    assert.deepEqual(parseSignatureList(body(null), 'r'), []);
    assert.deepEqual(parseSignatureList(body({}), 'r'), []);
    assert.deepEqual(parseSignatureList(body({ signatures: null }), 'r'), []);
  });

  it('ignores line breaks in base64, as Go does', () => {
    const b64 = Buffer.from('a longer signature body').toString('base64');
    const sigs = parseSignatureList(body({ signatures: [{ schemaVersion: 2, type: 'atomic', content: `${b64.slice(0, 8)}\n${b64.slice(8)}` }] }), 'r');
    assert.equal(sigs[0]!.toString(), 'a longer signature body');
  });

  for (const [name, raw, why] of [
    ['not JSON', Buffer.from('{"signatures": ['), /decoding signature list/],
    ['an array', body([]), /not a JSON object/],
    ['signatures not an array', body({ signatures: {} }), /"signatures" is not an array/],
    ['an entry not an object', body({ signatures: [3] }), /signature 0 is not an object/],
    ['bad base64', body({ signatures: [{ schemaVersion: 2, type: 'atomic', content: 'no!t base64' }] }), /not valid base64/],
    ['content a number', body({ signatures: [{ schemaVersion: 2, type: 'atomic', content: 5 }] }), /not a base64 string/],
    ['schemaVersion a string', body({ signatures: [entry('x', { schemaVersion: '2' })] }), /not an integer/],
    ['129 signatures', body({ signatures: Array.from({ length: 129 }, () => entry('s')) }), /more than 128 signatures/],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseSignatureList(raw, 'reg/repo@sha256:x'), (err: unknown) => err instanceof UnsafeContentError && why.test(err.message) && err.message.startsWith('reg/repo@sha256:x: '));
    });
  }

  it('128 signatures are accepted', () => {
    assert.equal(parseSignatureList(body({ signatures: Array.from({ length: 128 }, () => entry('s')) }), 'r').length, 128);
  });
});
