/**
 * The addon's BlobHasher (blob-hasher.c): chunks hashed in order on the thread pool, written to a
 * file when given its descriptor, its digest given once, and its misuses refused.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { isNativeError, native } from '../../protocol/seqpacket/native';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-blob-hasher-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function codeOf(work: () => unknown): Promise<string> {
  try {
    await work();
  } catch (err) {
    assert.ok(isNativeError(err), `not an error with a code: ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a failure');
}

describe('BlobHasher', () => {
  it('hashes every chunk in order, writes only the updates given a descriptor, and appends after what the file holds', async () => {
    const file = path.join(tmp, 'blob');
    const before = Buffer.from('already there|');
    const chunks = [randomBytes(70_000), Buffer.alloc(0), randomBytes(1), randomBytes(3 * 1024 * 1024)];
    const hashedOnly = randomBytes(5000);
    const fd = openSync(file, 'w');
    try {
      const hasher = new native.BlobHasher('sha256');
      await hasher.update([hashedOnly], -1);
      await new native.BlobHasher('sha256').update([before], fd);
      await hasher.update(chunks.slice(0, 2), fd);
      await hasher.update(chunks.slice(2), fd);
      assert.equal(hasher.digest(), createHash('sha256').update(Buffer.concat([hashedOnly, ...chunks])).digest('hex'));
    } finally {
      closeSync(fd);
    }
    assert.deepEqual(readFileSync(file), Buffer.concat([before, ...chunks]));
  });

  it('takes sha512, and gives the digest of nothing', async () => {
    const hasher = new native.BlobHasher('sha512');
    await hasher.update([], -1);
    assert.equal(hasher.digest(), createHash('sha512').digest('hex'));
  });

  it('refuses a second update in flight, a digest taken twice, a descriptor not open for writing, a chunk that is no bytes and an unknown algorithm', async () => {
    const hasher = new native.BlobHasher('sha256');
    const first = hasher.update([randomBytes(1024 * 1024)], -1);
    assert.equal(await codeOf(() => hasher.update([Buffer.from('x')], -1)), 'ERR_BLOB_HASHER_BUSY');
    assert.equal(await codeOf(() => hasher.digest()), 'ERR_BLOB_HASHER_BUSY');
    await first;
    hasher.digest();
    assert.equal(await codeOf(() => hasher.digest()), 'ERR_BLOB_HASHER_FINISHED');

    writeFileSync(path.join(tmp, 'read-only'), '');
    const readOnly = openSync(path.join(tmp, 'read-only'), 'r');
    try {
      assert.equal(await codeOf(() => new native.BlobHasher('sha256').update([Buffer.from('x')], readOnly)), 'EBADF');
    } finally {
      closeSync(readOnly);
    }
    assert.equal(await codeOf(() => new native.BlobHasher('sha256').update(['x' as unknown as Uint8Array], -1)), 'ERR_INVALID_ARG_TYPE');
    assert.equal(await codeOf(() => new native.BlobHasher('md4x')), 'ERR_INVALID_ARG_VALUE');
  });
});
