/**
 * Digest helpers and the streaming BlobVerifier (server/image/digest.ts). Hash values are the
 * published FIPS 180 test vectors for "abc" and the empty string, not outputs of the code.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { DigestMismatchError, InvalidArgumentError } from '../../protocol/errors';
import { BlobVerifier, isValidDigest, parseDigest, sha256Digest, verifyBytes } from '../../server/image/digest';

const ABC = {
  sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  sha384: 'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7',
  sha512: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
};
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('parseDigest', () => {
  it('accepts sha256, sha384 and sha512 in lower-case hex of the right length', () => {
    for (const [algorithm, hex] of Object.entries(ABC)) {
      assert.deepEqual(parseDigest(`${algorithm}:${hex}`), { algorithm, hex, value: `${algorithm}:${hex}` });
    }
  });

  const refused: [string, RegExp][] = [
    ['', /invalid checksum digest format/],
    ['sha256', /invalid checksum digest format/],
    [`:${ABC.sha256}`, /invalid checksum digest format/],
    ['sha256:', /invalid checksum digest format/],
    [`sha256:${ABC.sha256.toUpperCase()}`, /invalid checksum digest format/],
    [`sha256:${ABC.sha256}0`, /invalid checksum digest format/],
    [`sha256:${ABC.sha256.slice(1)}`, /invalid checksum digest format/],
    [`sha384:${ABC.sha256}`, /invalid checksum digest format/],
    ['sha256:../../../../etc/passwd', /invalid checksum digest format/],
    [`sha256:${'g'.repeat(64)}`, /invalid checksum digest format/],
    [`md5:${'a'.repeat(32)}`, /unsupported digest algorithm/],
    [`SHA256:${ABC.sha256}`, /unsupported digest algorithm/],
  ];
  for (const [value, pattern] of refused) {
    it(`refuses ${JSON.stringify(value.slice(0, 30))}`, () => {
      assert.throws(() => parseDigest(value), (err: Error) => err instanceof InvalidArgumentError && pattern.test(err.message));
      assert.equal(isValidDigest(value), false);
    });
  }
});

describe('sha256Digest and verifyBytes', () => {
  it('hashes to the published vectors', () => {
    assert.equal(sha256Digest(''), `sha256:${EMPTY_SHA256}`);
    assert.equal(sha256Digest(Buffer.from('abc')), `sha256:${ABC.sha256}`);
  });

  it('verifies with the algorithm the digest names', () => {
    for (const [algorithm, hex] of Object.entries(ABC)) verifyBytes(Buffer.from('abc'), `${algorithm}:${hex}`, 'thing');
  });

  it('throws DigestMismatchError naming the thing and the digest on a mismatch', () => {
    assert.throws(() => verifyBytes(Buffer.from('abd'), `sha512:${ABC.sha512}`, 'image config'), (err: Error) =>
      err instanceof DigestMismatchError && err.message === `image config: content does not match digest sha512:${ABC.sha512}`);
  });

  it('refuses a malformed digest before hashing', () => {
    assert.throws(() => verifyBytes(Buffer.from('abc'), 'sha256:abc', 'x'), InvalidArgumentError);
  });
});

/** Feeds chunks through a verifier the way the copy loop does: stop at the first overflow. */
function feed(verifier: BlobVerifier, chunks: string[]): { delivered: string; overflow: boolean } {
  let delivered = '';
  for (const chunk of chunks) {
    const { part, overflow } = verifier.take(Buffer.from(chunk));
    delivered += part.toString();
    if (overflow) return { delivered, overflow };
  }
  return { delivered, overflow: false };
}

describe('BlobVerifier', () => {
  const abc = parseDigest(`sha256:${ABC.sha256}`);

  it('passes a blob of the right size and digest, however it is chunked', () => {
    for (const chunks of [['abc'], ['a', 'b', 'c'], ['', 'ab', '', 'c']]) {
      const v = new BlobVerifier(abc, 3);
      assert.deepEqual(feed(v, chunks), { delivered: 'abc', overflow: false });
      v.finish();
    }
  });

  it('on overflow delivers exactly the expected bytes, then reports the overflow', () => {
    const v = new BlobVerifier(abc, 3);
    assert.deepEqual(feed(v, ['ab', 'cdef']), { delivered: 'abc', overflow: true });
    const err = v.overflowError();
    assert.ok(err instanceof DigestMismatchError);
    assert.equal(err.message, 'expected 3 bytes in blob, got more');
  });

  it('an extra chunk after exactly the expected bytes is an overflow with nothing delivered', () => {
    const v = new BlobVerifier(abc, 3);
    assert.deepEqual(feed(v, ['abc']), { delivered: 'abc', overflow: false });
    const { part, overflow } = v.take(Buffer.from('d'));
    assert.equal(part.length, 0);
    assert.equal(overflow, true);
  });

  it('a short blob fails at finish, counting what came', () => {
    const v = new BlobVerifier(abc, 10);
    feed(v, ['abc']);
    assert.throws(() => v.finish(), (err: Error) => err instanceof DigestMismatchError && err.message === 'expected 10 bytes in blob, got 3');
  });

  it('a blob of the right size but other bytes fails at finish as corrupted', () => {
    const v = new BlobVerifier(abc, 3);
    feed(v, ['abd']);
    assert.throws(() => v.finish(), (err: Error) => err instanceof DigestMismatchError && err.message === `corrupted blob, expecting sha256:${ABC.sha256}`);
  });

  it('with an unknown size (-1) checks the digest only', () => {
    const good = new BlobVerifier(abc, -1);
    assert.deepEqual(feed(good, ['a', 'bc']), { delivered: 'abc', overflow: false });
    good.finish();
    const longer = new BlobVerifier(abc, -1);
    assert.deepEqual(feed(longer, ['abcd']), { delivered: 'abcd', overflow: false });
    assert.throws(() => longer.finish(), /corrupted blob/);
  });

  it('uses the digest\'s own algorithm', () => {
    const v = new BlobVerifier(parseDigest(`sha384:${ABC.sha384}`), 3);
    feed(v, ['abc']);
    v.finish();
  });

  it('an empty blob is verified against the empty digest', () => {
    const v = new BlobVerifier(parseDigest(`sha256:${EMPTY_SHA256}`), 0);
    assert.deepEqual(feed(v, []), { delivered: '', overflow: false });
    v.finish();
  });
});
