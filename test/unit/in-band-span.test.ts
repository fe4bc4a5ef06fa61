/**
 * The in-band copy of a local file span (server/transfer/sinks/in-band-span.ts), through
 * copyBody and a real InBandSink over real files: the bytes arrive whole and in order without
 * the stream ever being read, never past the credit granted, a digest mismatch or an overflow
 * is reported after every verified byte was sent (without waiting for credit), and a
 * cancellation, the sink closing or a failed send each settle the copy at once and release the file.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createReadStream, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BrokenPipeError, CancelledError, DigestMismatchError } from '../../protocol/errors';
import { BlobVerifier, parseDigest } from '../../server/image/digest';
import type { TransferBody } from '../../server/transfer/body';
import { copyBody, TransferProgress } from '../../server/transfer/copy';
import { withFileSpan } from '../../server/transfer/file-span';
import { InBandSink } from '../../server/transfer/sinks/in-band';

const CHUNK = 256 * 1024;

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-in-band-span-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A file holding `bytes`, opened as a span stream the way the local transports open blobs. */
function spanBody(bytes: Buffer, verify: { digest: string; size: number } | undefined, length?: number): TransferBody {
  const file = path.join(dir, `blob-${randomInt(1e9)}`);
  writeFileSync(file, bytes);
  const fd = openSync(file, 'r');
  const end = length === undefined ? undefined : length - 1;
  const stream = createReadStream('', { fd, autoClose: true, start: 0, end });
  const truncated = (): Error => new DigestMismatchError('the file ended early');
  return {
    stream: withFileSpan(stream, { fd, start: 0, length, truncated }),
    size: verify?.size ?? bytes.length,
    verifier: verify === undefined ? undefined : new BlobVerifier(parseDigest(verify.digest), verify.size),
    what: 'blob under test',
  };
}

/** Records what the sink sends and checks each chunk against the credit granted so far. */
class Receiver {
  readonly chunks: Buffer[] = [];
  granted: number;
  sent = 0;

  constructor(readonly sink: InBandSink, window: number) {
    this.granted = window;
  }

  start(onChunk: (chunk: Buffer) => void = () => undefined): void {
    this.sink.start(async (chunk) => {
      this.sent += chunk.length;
      assert.ok(this.sent <= this.granted, `sent ${this.sent} bytes with ${this.granted} granted`);
      this.chunks.push(Buffer.from(chunk)); // the sender reuses its buffer once this returns
      onChunk(chunk);
    });
  }

  grant(bytes: number): void {
    this.granted += bytes;
    this.sink.grant(bytes);
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Settles after `ms`, or fails the test if `promise` settles first. */
async function stillPending(promise: Promise<unknown>, ms = 100): Promise<void> {
  const pending = Symbol('pending');
  const first = await Promise.race([promise.then(() => 'settled', () => 'settled'), new Promise((resolve) => setTimeout(() => resolve(pending), ms))]);
  assert.equal(first, pending, 'the copy settled while it should wait');
}

describe('in-band copy of a file span', () => {
  it('sends every byte in order, within the credit granted bit by bit, without reading the stream', async () => {
    for (const size of [0, 1, 3 * CHUNK + 17, 5_000_000]) {
      const bytes = randomBytes(size);
      const body = spanBody(bytes, { digest: sha256(bytes), size });
      const window = 64 * 1024;
      const sink = new InBandSink('blob', window, CHUNK);
      const receiver = new Receiver(sink, window);
      // The client grants a random amount as each chunk is taken, later.
      receiver.start((chunk) => setTimeout(() => receiver.grant(chunk.length + randomInt(0, 3) * 1000), randomInt(2)));
      const progress = new TransferProgress();
      await copyBody(body, sink, { signal: new AbortController().signal, guard: undefined, progress });
      assert.ok(receiver.bytes.equals(bytes), `size ${size}: the bytes arrived whole and in order`);
      assert.equal(progress.bytes, size);
      assert.equal(body.stream.readableDidRead, false, 'the span was read by offset, not through the stream');
      assert.ok(body.stream.destroyed, 'the stream (and its descriptor) is released');
      assert.ok(receiver.chunks.every((c) => c.length > 0 && c.length <= CHUNK));
    }
  });

  it('reports a digest mismatch only after every byte was sent', async () => {
    const bytes = randomBytes(CHUNK * 2 + 5);
    const body = spanBody(bytes, { digest: sha256(randomBytes(8)), size: bytes.length });
    const sink = new InBandSink('blob', bytes.length, CHUNK);
    const receiver = new Receiver(sink, bytes.length);
    receiver.start();
    await assert.rejects(copyBody(body, sink, { signal: new AbortController().signal, guard: undefined }), DigestMismatchError);
    assert.ok(receiver.bytes.equals(bytes));
  });

  it('reports a blob longer than expected after the expected bytes, with no credit left to wait for', async () => {
    const bytes = randomBytes(CHUNK + 100);
    const expected = bytes.subarray(0, CHUNK + 50);
    const body = spanBody(bytes, { digest: sha256(expected), size: expected.length });
    const sink = new InBandSink('blob', expected.length, CHUNK); // exactly the expected bytes of credit
    const receiver = new Receiver(sink, expected.length);
    receiver.start();
    await assert.rejects(copyBody(body, sink, { signal: new AbortController().signal, guard: undefined }), (err: Error) => err instanceof DigestMismatchError && /got more/.test(err.message));
    assert.ok(receiver.bytes.equals(expected));
  });

  it('reports a file shorter than its span after the bytes it had', async () => {
    const bytes = randomBytes(1000);
    const body = spanBody(bytes, undefined, 5000);
    const sink = new InBandSink('blob', 1 << 20, CHUNK);
    const receiver = new Receiver(sink, 1 << 20);
    receiver.start();
    await assert.rejects(copyBody(body, sink, { signal: new AbortController().signal, guard: undefined }), /ended early/);
    assert.ok(receiver.bytes.equals(bytes));
  });

  it('settles at once when cancelled mid-transfer, waiting for credit, and releases the file', async () => {
    const bytes = randomBytes(CHUNK * 4);
    const body = spanBody(bytes, { digest: sha256(bytes), size: bytes.length });
    const sink = new InBandSink('blob', CHUNK, CHUNK);
    const receiver = new Receiver(sink, CHUNK);
    receiver.start();
    const controller = new AbortController();
    const copy = copyBody(body, sink, { signal: controller.signal, guard: undefined });
    await stillPending(copy);
    assert.equal(receiver.sent, CHUNK, 'the window was used, and no more');
    controller.abort(new CancelledError('transfer cancelled'));
    await assert.rejects(copy, CancelledError);
    assert.ok(body.stream.destroyed);
    receiver.grant(CHUNK * 4);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(receiver.sent, CHUNK, 'nothing is sent after the cancellation');
  });

  it('fails as a broken pipe when the connection closes mid-transfer, or a send fails', async () => {
    const bytes = randomBytes(CHUNK * 4);
    const closing = spanBody(bytes, { digest: sha256(bytes), size: bytes.length });
    const sink = new InBandSink('blob', CHUNK, CHUNK);
    new Receiver(sink, CHUNK).start();
    const copy = copyBody(closing, sink, { signal: new AbortController().signal, guard: undefined });
    await stillPending(copy);
    sink.close();
    await assert.rejects(copy, BrokenPipeError);
    assert.ok(closing.stream.destroyed);

    const failing = spanBody(bytes, { digest: sha256(bytes), size: bytes.length });
    const sink2 = new InBandSink('blob', bytes.length, CHUNK);
    let sends = 0;
    sink2.start(() => (++sends === 2 ? Promise.reject(Object.assign(new Error('gone'), { code: 'EPIPE' })) : Promise.resolve()));
    await assert.rejects(copyBody(failing, sink2, { signal: new AbortController().signal, guard: undefined }), BrokenPipeError);
    assert.equal(sends, 2, 'no send after the failed one');
    assert.ok(failing.stream.destroyed);
  });

  it('waits for start(): nothing is sent before the response naming the transfer is out', async () => {
    const bytes = randomBytes(1000);
    const body = spanBody(bytes, { digest: sha256(bytes), size: bytes.length });
    const sink = new InBandSink('blob', 1 << 20, CHUNK);
    const receiver = new Receiver(sink, 1 << 20);
    const copy = copyBody(body, sink, { signal: new AbortController().signal, guard: undefined });
    await stillPending(copy);
    receiver.start();
    await copy;
    assert.ok(receiver.bytes.equals(bytes));
  });
});
