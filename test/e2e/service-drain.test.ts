/**
 * Stopping the service: SIGTERM with a transfer in flight stops accepting at once (the socket
 * file goes), lets the transfer finish (bytes whole, FinishPipe answered) and exits 0 well
 * within the grace period; a client that holds a transfer past the grace period is cut off
 * and the service still exits 0, soon after the grace period.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { native } from '../../protocol/seqpacket/native';
import { randomLayer, writeOciImage, type BuiltLayer } from '../harness/oci-builder';
import { sleep, startService, stopService, until } from '../harness/service';

let root: string;
let reference: string;
let big: BuiltLayer;

before(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'service-drain-'));
  big = randomLayer(16 * 1024 * 1024, 'big.bin');
  writeOciImage(path.join(root, 'image'), { layers: [big] }, 'latest');
  reference = `oci:${path.join(root, 'image')}:latest`;
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A reader that takes about `ms` for `total` bytes. */
function slowReader(total: number, ms: number): { sink: Writable; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  const perChunkMs = Math.max(1, Math.floor(ms / (total / (64 * 1024))));
  return {
    sink: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        parts.push(chunk);
        setTimeout(callback, perChunkMs);
      },
    }),
    bytes: () => Buffer.concat(parts),
  };
}

describe('serve --listen: SIGTERM', { timeout: 90_000 }, () => {
  it('drains a transfer in flight, refusing new connections, then exits 0 within the grace period', async () => {
    const socketPath = path.join(root, 'drain.sock');
    const service = await startService({ socketPath, args: ['--grace-period', '20s'] });
    const proxy = await service.connect();
    const image = await proxy.openImage(reference);
    const transfer = await proxy.getBlob(image, big.digest, big.compressed.length);
    const reader = slowReader(big.compressed.length, 1500);
    const reading = pipeline(transfer.stream, reader.sink);
    const finished = transfer.finish();
    await sleep(100);

    const stopped = stopService(service);
    await until('the socket file is removed', () => !existsSync(socketPath), 5000);
    assert.throws(() => native.connectSeqpacket(socketPath), /ENOENT|ECONNREFUSED/);
    await reading;
    await finished; // FinishPipe answered: the connection was still served
    assert.ok(reader.bytes().equals(big.compressed), 'every byte arrived');
    await proxy.close();
    const exit = await stopped;
    assert.deepEqual([exit.code, exit.signal], [0, null], service.stderr);
    assert.ok(exit.ms < 10_000, `exited ${exit.ms} ms after SIGTERM, long before the 20 s grace period`);
  });

  it('cuts off a transfer still held when the grace period ends, and exits 0', async () => {
    const socketPath = path.join(root, 'grace.sock');
    const service = await startService({ socketPath, args: ['--grace-period', '1s'] });
    const proxy = await service.connect();
    const image = await proxy.openImage(reference);
    const transfer = await proxy.getBlob(image, big.digest, big.compressed.length);
    transfer.stream.pause(); // never read: the pipe fills and the copy waits
    const finished = transfer.finish().then(() => 'finished', (err: unknown) => `failed: ${String(err)}`);
    await sleep(100);
    const exit = await stopService(service, 'SIGINT');
    assert.deepEqual([exit.code, exit.signal], [0, null], service.stderr);
    assert.ok(exit.ms >= 900 && exit.ms < 6000, `exited ${exit.ms} ms after SIGINT with a 1 s grace period`);
    assert.match(await finished, /^failed: /, 'the client learns its transfer did not finish');
    transfer.stream.destroy();
    await proxy.close();
  });
});
