/**
 * Sessions and transfers in process, with no wire: the copy loop settles on every way a copy
 * can end, CloseImage and session close cancel what they own and release file descriptors,
 * and the service layer loads without the native addon.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { CancelledError, NotInitializedError, UnknownMethodError } from '../../protocol/errors';
import { BlobVerifier, parseDigest } from '../../server/image/digest';
import { MAX_HELD_TRANSFERS, Session } from '../../server/service/session';
import type { TransferBody } from '../../server/transfer/body';
import { copyBody } from '../../server/transfer/copy';
import type { Sink } from '../../server/transfer/sink';
import { closeTestContext, testContext } from '../harness/context';
import { randomLayer, writeOciImage, type BuiltLayer } from '../harness/oci-builder';

/** A sink nobody reads: the copy fills its buffer and waits, as with a slow client. */
class StalledSink implements Sink {
  readonly writable = new PassThrough({ highWaterMark: 16 * 1024 });
  closed = false;
  describeFailure(err: Error): Error {
    return err;
  }
  close(): void {
    this.closed = true;
    this.writable.destroy();
  }
}

/** Open descriptors of this process that point at `file`. */
function descriptorsOn(file: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) count++;
    } catch {
      // closed while listing
    }
  }
  return count;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-session-'));
const archive = path.join(tmp, 'image.tar');
let layer: BuiltLayer;

before(() => {
  layer = randomLayer(4 * 1024 * 1024, 'big.bin');
  const layout = path.join(tmp, 'layout');
  writeOciImage(layout, { layers: [layer] }, 'latest');
  execFileSync('tar', ['-C', layout, '-cf', archive, '.']);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function body(stream: Readable, verifier?: BlobVerifier): TransferBody {
  return { stream, size: -1, verifier, what: 'test body' };
}

describe('copy loop', () => {
  it('settles when the source closes before its end (a file closed under its read stream)', async () => {
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(1000));
    const sink = new StalledSink();
    const copying = copyBody(body(source), sink, { signal: new AbortController().signal, guard: undefined });
    setImmediate(() => source.destroy()); // 'close' without 'end' or 'error'
    await assert.rejects(copying, /premature close/i);
  });

  it('settles with the abort reason when its signal aborts, and destroys the source', async () => {
    const source = new Readable({ read() {} });
    const controller = new AbortController();
    const copying = copyBody(body(source), new StalledSink(), { signal: controller.signal, guard: undefined });
    controller.abort(new CancelledError('image 7 was closed'));
    await assert.rejects(copying, (err: unknown) => err instanceof CancelledError && /image 7/.test(err.message));
    assert.equal(source.destroyed, true);
  });

  it('delivers every byte within the expected size before a verification error', async () => {
    const data = Buffer.alloc(5000, 1);
    const sink = new StalledSink();
    const received: Buffer[] = [];
    sink.writable.on('data', (c: Buffer) => received.push(c));
    const verifier = new BlobVerifier(parseDigest(`sha256:${'0'.repeat(64)}`), 3000);
    await assert.rejects(copyBody(body(Readable.from([data]), verifier), sink, { signal: new AbortController().signal, guard: undefined }));
    assert.equal(Buffer.concat(received).length, 3000);
  });
});

describe('session', () => {
  it('refuses unknown methods and methods before Initialize with distinct errors', async () => {
    const ctx = testContext();
    const session = new Session({ ctx, guard: undefined });
    await assert.rejects(session.call('NoSuchMethod', []), UnknownMethodError);
    await assert.rejects(session.call('OpenImage', [`oci-archive:${archive}`]), NotInitializedError);
    await session.close();
    await closeTestContext(ctx);
  });

  it('CloseImage ends the image transfers with a clear error and releases the archive', async () => {
    const ctx = testContext();
    const session = new Session({ ctx, guard: undefined });
    await session.call('Initialize', []);
    const id = (await session.call('OpenImage', [`oci-archive:${archive}:latest`])).value as number;
    assert.ok(descriptorsOn(archive) >= 1, 'the open image holds the archive');
    const result = await session.call('GetBlob', [id, layer.digest, layer.compressed.length]);
    const sink = new StalledSink();
    const { transfer } = session.startTransfer(result.pending!, () => ({ sink }), true);
    await session.call('CloseImage', [id]);
    const err = await transfer.outcome;
    assert.ok(err instanceof CancelledError, `got ${String(err)}`);
    assert.match(err.message, new RegExp(`image ${id} was closed`));
    await assert.rejects(session.finishTransfer(transfer.id), CancelledError);
    assert.equal(sink.closed, true, 'the reader sees the end at once');
    assert.equal(descriptorsOn(archive), 0, 'the archive is closed');
    await session.close();
    await closeTestContext(ctx);
  });

  it('requests and transfers leave nothing behind on the session once they are done', async () => {
    const ctx = testContext();
    const session = new Session({ ctx, guard: undefined });
    await session.call('Initialize', []);
    const baseline = session.liveChildren;
    const listeners = getEventListeners(session.signal, 'abort').length;
    const id = (await session.call('OpenImage', [`oci-archive:${archive}:latest`])).value as number;
    const withImage = session.liveChildren;
    assert.equal(withImage, baseline + 1, 'the open image is the one child left');
    await Promise.all(Array.from({ length: 50 }, () => session.call('GetLayerInfo', [id])));
    for (let i = 0; i < 20; i++) {
      const result = await session.call('GetManifest', [id]);
      const sink = new StalledSink();
      sink.writable.resume();
      const { transfer } = session.startTransfer(result.pending!, () => ({ sink }), true);
      await session.finishTransfer(transfer.id);
    }
    assert.equal(session.liveChildren, withImage);
    assert.equal(getEventListeners(session.signal, 'abort').length, listeners);
    await session.call('CloseImage', [id]);
    assert.equal(session.liveChildren, baseline);
    await session.close();
    await closeTestContext(ctx);
  });

  it('refuses a transfer past MAX_HELD_TRANSFERS with a clear error, and releases its body', async () => {
    const ctx = testContext();
    const session = new Session({ ctx, guard: undefined });
    await session.call('Initialize', []);
    const id = (await session.call('OpenImage', [`oci-archive:${archive}:latest`])).value as number;
    for (let i = 0; i < MAX_HELD_TRANSFERS; i++) {
      const result = await session.call('GetBlob', [id, layer.digest, layer.compressed.length]);
      session.startTransfer(result.pending!, () => ({ sink: new StalledSink() }), i % 2 === 0);
    }
    const extra = await session.call('GetBlob', [id, layer.digest, layer.compressed.length]);
    let opened = false;
    assert.throws(() => session.startTransfer(extra.pending!, () => { opened = true; return { sink: new StalledSink() }; }, true), /too many transfers in progress \(256\)/);
    assert.equal(opened, false, 'no sink is made for a refused transfer');
    assert.equal(extra.pending!.body.stream.destroyed, true);
    await session.close();
    await closeTestContext(ctx);
  });

  it('closing the session cancels requests and transfers, closes every sink and file, and refuses new calls', async () => {
    const ctx = testContext();
    const session = new Session({ ctx, guard: undefined });
    await session.call('Initialize', []);
    const sinks: StalledSink[] = [];
    const outcomes: Promise<Error | undefined>[] = [];
    for (let i = 0; i < 3; i++) {
      const id = (await session.call('OpenImage', [`oci-archive:${archive}:latest`])).value as number;
      const result = await session.call('GetBlob', [id, layer.digest, layer.compressed.length]);
      const sink = new StalledSink();
      sinks.push(sink);
      outcomes.push(session.startTransfer(result.pending!, () => ({ sink }), i % 2 === 0).transfer.outcome);
    }
    assert.equal(descriptorsOn(archive), 3);
    assert.equal(session.activeTransfers, 3);
    await session.close();
    for (const err of await Promise.all(outcomes)) assert.ok(err instanceof CancelledError, `got ${String(err)}`);
    assert.ok(sinks.every((s) => s.closed));
    assert.equal(session.activeTransfers, 0);
    assert.equal(descriptorsOn(archive), 0, 'every image source was closed');
    await assert.rejects(session.call('GetLayerInfo', [1]), /session closed/);
    await closeTestContext(ctx);
  });
});

describe('layering', () => {
  it('the service and the image model load without the native addon', () => {
    const dist = path.resolve(__dirname, '..', '..');
    const script = [
      `require(${JSON.stringify(path.join(dist, 'server', 'service', 'session.js'))});`,
      `require(${JSON.stringify(path.join(dist, 'server', 'image', 'open.js'))});`,
      "process.stdout.write(String(Object.keys(require.cache).some((k) => k.endsWith('.node') || k.includes('seqpacket'))));",
    ].join('\n');
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'false');
  });
});

describe('memory guard', () => {
  /** In a fresh process: a session opens the layout's image, then 300k objects that survive are made; the young generation's size in MiB. */
  function youngGenerationAfterOpen(guarded: boolean): number {
    const dist = path.resolve(__dirname, '..', '..');
    const script = [
      `const { Session } = require(${JSON.stringify(path.join(dist, 'server', 'service', 'session.js'))});`,
      `const { MemoryGuard } = require(${JSON.stringify(path.join(dist, 'server', 'transfer', 'memory-guard.js'))});`,
      `const { testContext, closeTestContext } = require(${JSON.stringify(path.join(dist, 'test', 'harness', 'context.js'))});`,
      'const ctx = testContext();',
      `const session = new Session({ ctx, guard: ${guarded ? 'MemoryGuard.create()' : 'undefined'} });`,
      '(async () => {',
      "  await session.call('Initialize', []);",
      `  await session.call('OpenImage', [${JSON.stringify(`oci:${path.join(tmp, 'layout')}:latest`)}]);`,
      '  const kept = [];',
      "  for (let i = 0; i < 300000; i++) kept.push({ i, s: 'x' + i });",
      "  const young = require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');",
      '  process.stdout.write(String(young.space_size / 1048576));',
      '  await session.close();',
      '  await closeTestContext(ctx);',
      '})();',
    ].join('\n');
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return Number(run.stdout);
  }

  it('OpenImage sets its V8 flags once the open path is loaded: the young generation then stays at its start-up size', () => {
    // Without a guard V8 doubles the young generation as objects keep surviving (to 16-32 MiB here).
    assert.ok(youngGenerationAfterOpen(false) > 4);
    assert.ok(youngGenerationAfterOpen(true) <= 2);
  });
});
