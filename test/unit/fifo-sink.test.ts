/**
 * FIFO sinks against the real kernel: bytes arrive whole through a FIFO a reader opens after
 * the copy started, a reader that goes away early gives "broken pipe", a FIFO nobody opens
 * fails its transfer after the open timeout, and the private directory is 0700 and removed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, openSync, closeSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { BrokenPipeError, CancelledError, LayerpipeError } from '../../protocol/errors';
import type { TransferBody } from '../../server/transfer/body';
import { Session } from '../../server/service/session';
import { copyBody } from '../../server/transfer/copy';
import { PIPE_BUFFER_BYTES } from '../../server/transfer/sinks/fd-pipe';
import { privateParentDirectory, SessionFifos } from '../../server/transfer/sinks/fifo';
import { openFifoSink } from '../../server/transfer/sinks/fifo-sink';
import { closeTestContext, testContext } from '../harness/context';

const parent = mkdtempSync(path.join(os.tmpdir(), 'fifo-sink-test-'));
after(() => rmSync(parent, { recursive: true, force: true }));

function bodyOf(bytes: Buffer, chunk = 64 * 1024): TransferBody {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += chunk) chunks.push(bytes.subarray(at, at + chunk));
  return { stream: Readable.from(chunks), size: bytes.length, verifier: undefined, what: 'test blob' };
}

async function readAll(file: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of createReadStream(file)) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('FIFO sink', () => {
  it('delivers every byte to a reader that opens the FIFO after the copy started, and unlinks it once open', async () => {
    const fifos = new SessionFifos({ parent });
    const bytes = randomBytes(5 * 1024 * 1024 + 123);
    const { sink, path: fifoPath } = openFifoSink(fifos, 'blob sha256:test');
    assert.ok(statSync(fifoPath).isFIFO());
    const copied = copyBody(bodyOf(bytes), sink, { signal: new AbortController().signal, guard: undefined });
    await delay(50); // the writer is retrying by now
    const received = readAll(fifoPath);
    await copied;
    assert.equal(existsSync(fifoPath), false, 'the FIFO leaves the directory once both ends are open');
    sink.close(); // the transfer's end: the reader sees end of data
    assert.ok((await received).equals(bytes));
    fifos.close();
  });

  it('gives the FIFO the buffer of a pipe sink: a body that fits it is copied before any read', async () => {
    const fifos = new SessionFifos({ parent });
    const bytes = randomBytes(PIPE_BUFFER_BYTES - 100 * 1024); // more than the kernel's 64 KiB default
    const { sink, path: fifoPath } = openFifoSink(fifos, 'blob sha256:fits');
    const copied = copyBody(bodyOf(bytes), sink, { signal: new AbortController().signal, guard: undefined });
    const reader = await openAsync(fifoPath, 'r'); // opened, not read
    const settled = await Promise.race([copied.then(() => 'copied'), delay(2_000).then(() => 'waiting for the reader')]);
    assert.equal(settled, 'copied');
    sink.close();
    const got = Buffer.alloc(bytes.length + 1);
    let at = 0;
    for (;;) {
      const { bytesRead } = await reader.read(got, at, got.length - at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    await reader.close();
    assert.ok(got.subarray(0, at).equals(bytes));
    fifos.close();
  });

  it('reports broken pipe when the reader closes early', async () => {
    const fifos = new SessionFifos({ parent });
    const { sink, path: fifoPath } = openFifoSink(fifos, 'blob sha256:early');
    const copied = copyBody(bodyOf(randomBytes(16 * 1024 * 1024)), sink, { signal: new AbortController().signal, guard: undefined });
    copied.catch(() => undefined); // checked below, after the reader has gone
    const reader = await openAsync(fifoPath, 'r');
    const { bytesRead } = await reader.read(Buffer.alloc(4096), 0, 4096);
    assert.ok(bytesRead > 0);
    await reader.close();
    await assert.rejects(copied, (err: unknown) => err instanceof BrokenPipeError && /blob sha256:early: write: broken pipe/.test(err.message));
    sink.close();
    fifos.close();
  });

  it('fails the transfer with a clear error when nobody opens the FIFO, and removes it', async () => {
    const fifos = new SessionFifos({ parent, openTimeoutMs: 200 });
    const { sink, path: fifoPath } = openFifoSink(fifos, 'blob sha256:nobody');
    const started = Date.now();
    await assert.rejects(
      copyBody(bodyOf(randomBytes(1024)), sink, { signal: new AbortController().signal, guard: undefined }),
      (err: unknown) => err instanceof LayerpipeError && err.message.startsWith(`nobody opened the FIFO ${fifoPath}`),
    );
    const waited = Date.now() - started;
    assert.ok(waited >= 190 && waited < 2000, `gave up after ${waited} ms`);
    assert.equal(existsSync(fifoPath), false);
    sink.close();
    fifos.close();
  });

  it('releases a reader blocked opening the FIFO when the transfer ends before the data', async () => {
    const fifos = new SessionFifos({ parent });
    const { sink, path: fifoPath } = openFifoSink(fifos, 'blob sha256:cancelled');
    const controller = new AbortController();
    // An empty source that never ends: the copy waits until it is cancelled.
    const body: TransferBody = { stream: new Readable({ read: () => undefined }), size: 10, verifier: undefined, what: 'never' };
    const copied = copyBody(body, sink, { signal: controller.signal, guard: undefined });
    controller.abort(new CancelledError('transfer cancelled'));
    await assert.rejects(copied, CancelledError);
    sink.close();
    assert.equal(existsSync(fifoPath), false);
    fifos.close();
  });

  it('lets a reader already blocked in open() through when the sink closes before writing', async () => {
    const fifos = new SessionFifos({ parent, openTimeoutMs: 60_000 });
    const { sink, path: fifoPath } = openFifoSink(fifos, 'blob sha256:blocked');
    // Blocking open on the thread pool: it returns only once some writer opens the FIFO.
    const received = readAll(fifoPath);
    await delay(30);
    sink.close();
    assert.equal((await received).length, 0);
    fifos.close();
  });

  it('makes a private 0700 directory on first use, FIFOs 0600 in it, and removes it all at close or when the session ends', () => {
    const session = new AbortController();
    let signalAsked = 0;
    const owner = {
      get signal(): AbortSignal {
        signalAsked++;
        return session.signal;
      },
    };
    const fifos = new SessionFifos({ parent, owner });
    assert.equal(fifos.directoryPath, undefined, 'nothing is made before the first FIFO');
    assert.equal(signalAsked, 0, "the session's signal is not asked for before the first FIFO");
    const first = openFifoSink(fifos, 'a');
    assert.ok(signalAsked > 0);
    const second = openFifoSink(fifos, 'b');
    const dir = fifos.directoryPath!;
    assert.equal(path.dirname(dir), parent);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(first.path).mode & 0o777, 0o600);
    assert.ok(statSync(first.path).isFIFO());
    assert.notEqual(first.path, second.path);
    assert.deepEqual(readdirSync(dir).sort(), ['transfer-1', 'transfer-2']);
    session.abort(new CancelledError('session closed'));
    assert.equal(existsSync(dir), false, 'the directory goes with the session');
    assert.throws(() => openFifoSink(fifos, 'c'), CancelledError);
    first.sink.close();
    second.sink.close();
  });

  it('chooses $XDG_RUNTIME_DIR when it is a usable directory of ours, else the temp directory', () => {
    assert.equal(privateParentDirectory({ XDG_RUNTIME_DIR: parent }), parent);
    assert.equal(privateParentDirectory({ XDG_RUNTIME_DIR: path.join(parent, 'missing') }), os.tmpdir());
    assert.equal(privateParentDirectory({ XDG_RUNTIME_DIR: 'relative/dir' }), os.tmpdir());
    assert.equal(privateParentDirectory({}), os.tmpdir());
  });

  it('leaves no descriptor open after a transfer', async () => {
    const before = readdirSync('/proc/self/fd').length;
    const fifos = new SessionFifos({ parent });
    const { sink, path: fifoPath } = openFifoSink(fifos, 'blob');
    const received = readAll(fifoPath);
    await copyBody(bodyOf(randomBytes(100_000)), sink, { signal: new AbortController().signal, guard: undefined });
    sink.close();
    await received;
    fifos.close();
    await delay(20);
    assert.equal(readdirSync('/proc/self/fd').length, before);
    // The addon's own descriptors are untouched: a plain open/close still works.
    closeSync(openSync(parent, 'r'));
  });

  it('a FIFO that cannot be made fails the request and releases the transfer\'s source', async () => {
    const ctx = testContext();
    const session = new Session({ ctx, guard: undefined });
    const fifos = new SessionFifos({ parent, owner: session });
    fifos.close(); // as when the session is already closing
    const source = Readable.from([Buffer.from('bytes')]);
    const pending = { body: { stream: source, size: 5, verifier: undefined, what: 'blob' }, owner: new AbortController().signal };
    assert.throws(() => session.startTransfer(pending, () => openFifoSink(fifos, 'blob'), true), CancelledError);
    assert.equal(source.destroyed, true);
    await session.close();
    await closeTestContext(ctx);
  });
});
