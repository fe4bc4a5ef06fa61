/**
 * The native pipe copy (server/transfer/pipe-copy.ts over the addon's FilePump and PipeFeed)
 * against the real kernel: file spans (spliced raw, hashed when verified) and streams (ring,
 * hashed, vmspliced) arrive whole; a wrong digest or a blob longer than expected is reported
 * only after every byte within the size is in the pipe; bytes left in the pipe after the copy
 * ended (ring unmapped) stay intact; a reader going away gives broken pipe; cancelling a copy
 * parked on a full pipe settles it at once; the digest's name is checked as BlobHasher checks it.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { BrokenPipeError, CancelledError, DigestMismatchError } from '../../protocol/errors';
import { native } from '../../protocol/seqpacket/native';
import { BlobVerifier, parseDigest } from '../../server/image/digest';
import type { TransferBody } from '../../server/transfer/body';
import { copyBody, TransferProgress } from '../../server/transfer/copy';
import { fileSpanOf } from '../../server/transfer/file-span';
import { openPipeSink, PIPE_BUFFER_BYTES, type PipeSink } from '../../server/transfer/sinks/fd-pipe';
import { ConfinedDirectory } from '../../server/transports/local/confined-dir';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pipe-copy-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Reads a pipe's read end to its end. */
function readPipe(fd: number): Promise<Buffer> {
  native.setNonBlocking(fd, true);
  const socket = new Socket({ fd, readable: true, writable: false });
  const parts: Buffer[] = [];
  return new Promise((resolve, reject) => {
    socket.on('data', (part: Buffer) => parts.push(part));
    socket.on('end', () => resolve(Buffer.concat(parts)));
    socket.on('error', reject);
  });
}

/** A file in the test directory opened the way oci: and dir: open blobs (a stream tagged with its span). */
async function fileBody(name: string, bytes: Buffer, verifiedAs?: { digest: string; size: number }): Promise<{ body: TransferBody; files: ConfinedDirectory }> {
  writeFileSync(path.join(dir, name), bytes);
  const files = await ConfinedDirectory.open(dir);
  const opened = await files.open(name);
  assert.ok(fileSpanOf(opened.stream) !== undefined, 'the stream carries its file span');
  const verifier = verifiedAs === undefined ? undefined : new BlobVerifier(parseDigest(verifiedAs.digest), verifiedAs.size);
  return { body: { stream: opened.stream, size: opened.size, verifier, what: `blob ${name}` }, files };
}

function streamBody(bytes: Buffer, verifiedAs?: { digest: string; size: number }): TransferBody {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 50_000) chunks.push(bytes.subarray(at, at + 50_000)); // not page-sized
  const verifier = verifiedAs === undefined ? undefined : new BlobVerifier(parseDigest(verifiedAs.digest), verifiedAs.size);
  return { stream: Readable.from(chunks), size: bytes.length, verifier, what: 'test blob' };
}

/** Copies `body` into a new pipe read concurrently; the copy's outcome and what the reader got. */
async function copyAndRead(body: TransferBody, progress?: TransferProgress): Promise<{ error: unknown; received: Buffer }> {
  const { sink, readFd } = openPipeSink(body.what);
  const received = readPipe(readFd);
  let error: unknown;
  try {
    await copyBody(body, sink, { signal: new AbortController().signal, guard: undefined, ...(progress === undefined ? {} : { progress }) });
  } catch (err) {
    error = err;
  }
  sink.close();
  return { error, received: await received };
}

describe('native pipe copy', () => {
  const bytes = randomBytes(6 * 1024 * 1024 + 4321);

  it('splices a raw file span whole, and counts it as progress', async () => {
    const { body, files } = await fileBody('raw', bytes);
    const progress = new TransferProgress();
    const { error, received } = await copyAndRead(body, progress);
    await files.close();
    assert.equal(error, undefined);
    assert.ok(received.equals(bytes));
    assert.equal(progress.bytes, bytes.length);
  });

  it('ends well when a raw reader that knew the size leaves before the file end is seen', async () => {
    // The kernel's splice looks for a reader before it looks for the file's end: a reader that
    // took every byte and closed (it knows the size from GetRawBlob) must not turn into EPIPE.
    const { sink, readFd } = openPipeSink('raw to a leaving reader');
    const capacity = native.setPipeSize(sink.fd, 64 * 1024);
    const exact = randomBytes(capacity);
    const { body, files } = await fileBody('exact', exact);
    const progress = new TransferProgress();
    const copied = copyBody(body, sink, { signal: new AbortController().signal, guard: undefined, progress }).then(() => undefined, (err: unknown) => err);
    while (progress.bytes < exact.length) await new Promise((resolve) => setImmediate(resolve));
    const received = Buffer.alloc(exact.length);
    for (let got = 0; got < exact.length;) got += readSync(readFd, received, got, exact.length - got, null);
    closeSync(readFd);
    const error = await copied;
    sink.close();
    await files.close();
    assert.equal(error, undefined);
    assert.ok(received.equals(exact));
  });

  it('hashes a verified file span and a verified stream on the way', async () => {
    const fromFile = await fileBody('ok', bytes, { digest: digestOf(bytes), size: bytes.length });
    const a = await copyAndRead(fromFile.body);
    await fromFile.files.close();
    assert.equal(a.error, undefined);
    assert.ok(a.received.equals(bytes));
    const b = await copyAndRead(streamBody(bytes, { digest: digestOf(bytes), size: bytes.length }));
    assert.equal(b.error, undefined);
    assert.ok(b.received.equals(bytes));
  });

  it('reports a wrong digest after delivering every byte, from a file and from a stream', async () => {
    const wrong = digestOf(Buffer.from('something else'));
    const fromFile = await fileBody('bad', bytes, { digest: wrong, size: bytes.length });
    const a = await copyAndRead(fromFile.body);
    await fromFile.files.close();
    assert.ok(a.error instanceof DigestMismatchError, String(a.error));
    assert.ok(a.received.equals(bytes));
    const b = await copyAndRead(streamBody(bytes, { digest: wrong, size: bytes.length }));
    assert.ok(b.error instanceof DigestMismatchError, String(b.error));
    assert.ok(b.received.equals(bytes));
  });

  it('delivers exactly the expected size of a longer blob, then reports it', async () => {
    const size = 3 * 1024 * 1024 + 17;
    const expected = bytes.subarray(0, size);
    const fromFile = await fileBody('long', bytes, { digest: digestOf(expected), size });
    const a = await copyAndRead(fromFile.body);
    await fromFile.files.close();
    assert.ok(a.error instanceof DigestMismatchError && /got more/.test(a.error.message), String(a.error));
    assert.ok(a.received.equals(expected));
    const b = await copyAndRead(streamBody(bytes, { digest: digestOf(expected), size }));
    assert.ok(b.error instanceof DigestMismatchError && /got more/.test(b.error.message), String(b.error));
    assert.ok(b.received.equals(expected));
  });

  it('keeps bytes left in the pipe intact after the copy ended and its ring was unmapped', async () => {
    const small = randomBytes(PIPE_BUFFER_BYTES - 100 * 1024); // fits the pipe: the copy ends before any read
    for (const body of [streamBody(small, { digest: digestOf(small), size: small.length }), (await fileBody('small', small, { digest: digestOf(small), size: small.length })).body]) {
      const { sink, readFd } = openPipeSink(body.what);
      await copyBody(body, sink, { signal: new AbortController().signal, guard: undefined });
      sink.close();
      const garbage = Array.from({ length: 64 }, () => Buffer.alloc(1024 * 1024, 0xee)); // reuse of freed memory shows here
      assert.ok((await readPipe(readFd)).equals(small));
      assert.equal(garbage.length, 64);
    }
  });

  it('reports broken pipe when the reader goes away, for a span and for a stream', async () => {
    for (const make of [async () => (await fileBody('gone', bytes)).body, async () => streamBody(bytes)]) {
      const { sink, readFd } = openPipeSink('blob gone');
      const copied = copyBody(await make(), sink, { signal: new AbortController().signal, guard: undefined });
      native.close(readFd);
      await assert.rejects(copied, BrokenPipeError);
      sink.close();
    }
  });

  it('settles at once when cancelled while parked on a full pipe', async () => {
    for (const make of [async () => (await fileBody('parked', bytes, { digest: digestOf(bytes), size: bytes.length })).body, async () => streamBody(bytes)]) {
      const { sink, readFd } = openPipeSink('blob parked');
      const controller = new AbortController();
      const copied = copyBody(await make(), sink, { signal: controller.signal, guard: undefined });
      await new Promise((resolve) => setTimeout(resolve, 100)); // nobody reads: the pipe fills up
      const cpuBefore = process.cpuUsage();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const parkedCpu = process.cpuUsage(cpuBefore);
      assert.ok(parkedCpu.user + parkedCpu.system < 100_000, `a parked copy must not spin (${parkedCpu.user + parkedCpu.system} µs in 200 ms)`);
      controller.abort(new CancelledError('cancelled by the test'));
      await assert.rejects(copied, CancelledError);
      sink.close();
      native.close(readFd);
    }
  });

  it('leaves a sink someone already wrote as a socket to the stream copy', async () => {
    const { sink, readFd }: { sink: PipeSink; readFd: number } = openPipeSink('blob socket');
    await sink.writeText('x');
    assert.equal(sink.direct, false);
    const received = readPipe(readFd);
    await copyBody(streamBody(Buffer.from('yz')), sink, { signal: new AbortController().signal, guard: undefined });
    sink.close();
    assert.equal((await received).toString(), 'xyz');
  });

  it('names its digest as BlobHasher does: PipeFeed and FilePump take null for none, refuse an unknown name and a non-string', () => {
    const [readEnd, writeEnd] = native.pipe();
    const code = (make: () => unknown): string => {
      try {
        make();
      } catch (err) {
        return (err as { code: string }).code;
      }
      return 'no error';
    };
    const pump = (algorithm: unknown): unknown => new native.FilePump(writeEnd, 0, 0, writeEnd, algorithm as string, -1, () => undefined);
    try {
      new native.PipeFeed(writeEnd, null).close();
      assert.equal(code(() => new native.PipeFeed(writeEnd, 'md4x')), 'ERR_INVALID_ARG_VALUE');
      assert.equal(code(() => new native.PipeFeed(writeEnd, 7 as unknown as string)), 'ERR_INVALID_ARG_TYPE');
      assert.equal(code(() => pump('md4x')), 'ERR_INVALID_ARG_VALUE');
      assert.equal(code(() => pump(undefined)), 'ERR_INVALID_ARG_TYPE');
    } finally {
      closeSync(readEnd);
      closeSync(writeEnd);
    }
  });
});
