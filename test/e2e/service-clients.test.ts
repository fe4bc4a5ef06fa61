/**
 * The service's connections are independent sessions: two clients at once, one killed with
 * SIGKILL mid-transfer while the other's bytes arrive whole; a connection's descriptors are
 * all released when it goes (counted in /proc/PID/fd of the service); a client sending
 * garbage gets errors and disturbs nobody; 1.0 clients with fd and fifo payloads beside a
 * 0.2.x one, each connection with its own FIFO directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readAll } from '../../clients/typescript';
import { native } from '../../protocol/seqpacket/native';
import { SeqpacketSocket } from '../../protocol/seqpacket/socket';
import { fetchBlob } from '../harness/registry-proxy-client';
import { randomLayer, writeOciImage, type BuiltLayer } from '../harness/oci-builder';
import { sleep, startService, stopService, until, type RunningService } from '../harness/service';

const CHILD_CLIENT = path.resolve(__dirname, '..', 'harness', 'service-client-child.js');

let root: string;
let reference: string;
let big: BuiltLayer;
let small: BuiltLayer;
let service: RunningService;
/** The service's descriptors with no connection (after a first one: some are opened once, on first use, and kept). */
let baseline: number;

before(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'service-clients-'));
  big = randomLayer(24 * 1024 * 1024, 'big.bin');
  small = randomLayer(5000, 'small.bin');
  writeOciImage(path.join(root, 'image'), { layers: [big, small] }, 'latest');
  reference = `oci:${path.join(root, 'image')}:latest`;
  service = await startService({ socketPath: path.join(root, 'service.sock'), env: { XDG_RUNTIME_DIR: root } });
  // One connection first: the process opens a few descriptors once, on its first work, and keeps them.
  const warmUp = await service.connect();
  await fetchBlob(warmUp, await warmUp.openImage(reference), small.digest, small.compressed.length);
  await warmUp.close();
  await sleep(200);
  baseline = service.openFds();
});
after(async () => {
  if (service.running) assert.equal((await stopService(service)).code, 0, service.stderr);
  rmSync(root, { recursive: true, force: true });
});

/** The service's fd count once it has settled (connections just closed may take a moment). */
async function settledFds(expected: number): Promise<number> {
  await until(`the service is back to ${expected} descriptors`, () => service.openFds() <= expected, 10_000).catch(() => undefined);
  return service.openFds();
}

describe('serve --listen: connections', { timeout: 120_000 }, () => {
  it('serves two clients at once; killing one mid-transfer leaves the other whole, and frees the killed one\'s descriptors', async () => {
    const idle = baseline;
    const victim = spawn(process.execPath, [CHILD_CLIENT, service.socketPath, reference, big.digest, String(big.compressed.length)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let victimErr = '';
    victim.stderr.on('data', (c: Buffer) => (victimErr += c.toString()));
    await new Promise<void>((resolve, reject) => {
      victim.stdout.once('data', () => resolve());
      victim.once('exit', (code) => reject(new Error(`the client exited (${code}) before reading: ${victimErr}`)));
    });
    assert.ok(service.openFds() > idle, 'the killed client\'s connection, image and transfer hold descriptors');

    const survivor = await service.connect();
    const image = await survivor.openImage(reference);
    const transfer = fetchBlob(survivor, image, big.digest, big.compressed.length);
    await sleep(20); // the survivor's transfer is under way
    victim.kill('SIGKILL');
    const bytes = await transfer;
    assert.ok(bytes.equals(big.compressed), 'the other client\'s blob arrives whole');
    assert.ok((await fetchBlob(survivor, image, small.digest, small.compressed.length)).equals(small.compressed));
    await survivor.close();
    assert.equal(await settledFds(idle), idle, 'every descriptor of both connections is released');
    assert.ok(service.running);
  });

  it('releases a connection\'s images and unfinished transfers when it closes', async () => {
    const idle = baseline;
    const proxy = await service.connect();
    const image = await proxy.openImage(reference);
    const transfers = await Promise.all([0, 1, 2].map(() => proxy.getBlob(image, big.digest, big.compressed.length)));
    assert.ok(service.openFds() >= idle + 4, `${service.openFds()} descriptors with three transfers held (idle ${idle})`);
    for (const t of transfers) t.stream.destroy();
    await proxy.close();
    assert.equal(await settledFds(idle), idle);
  });

  it('a client sending garbage gets error replies, and the others are served meanwhile', async () => {
    const fd = await service.connectFd();
    const rogue = new SeqpacketSocket(fd);
    const replies: string[] = [];
    rogue.on('packet', (p) => {
      for (const f of p.fds) native.close(f);
      replies.push(p.data.toString('utf8'));
    });
    rogue.on('error', () => undefined);
    await rogue.send(Buffer.from('{"method":"Initialize","args":[]}'));
    await rogue.send(Buffer.from('this is not json'));
    await rogue.send(Buffer.from(JSON.stringify({ method: 'NoSuchMethod', args: [] })));
    const proxy = await service.connect();
    const image = await proxy.openImage(reference);
    assert.ok((await fetchBlob(proxy, image, small.digest, small.compressed.length)).equals(small.compressed));
    await until('the rogue client got three replies', () => replies.length === 3);
    assert.deepEqual(replies.map((r) => (JSON.parse(r) as { success: boolean }).success), [true, false, false]);
    rogue.close();
    await proxy.close();
    assert.equal(await settledFds(baseline), baseline);
  });

  it('a connection that never speaks blocks nobody, and its end is noticed', async () => {
    const before = baseline;
    const silent = await service.connectFd();
    const proxy = await service.connect();
    assert.ok((await fetchBlob(proxy, await proxy.openImage(reference), small.digest, small.compressed.length)).equals(small.compressed));
    await proxy.close();
    native.close(silent);
    assert.equal(await settledFds(before), before);
  });

  it('Shutdown from a client (0.2.x or 1.0) ends its own connection only', async () => {
    const legacy = await service.connect();
    const rpc = await service.connectRpc();
    await rpc.request('Initialize', { protocolVersion: '1.0', payloads: ['fd'] });
    assert.equal(await rpc.request('Shutdown', {}), null);
    await legacy.shutdown();
    await sleep(200);
    assert.ok(service.running, 'the service is still running');
    const other = await service.connect();
    assert.ok((await fetchBlob(other, await other.openImage(reference), small.digest, small.compressed.length)).equals(small.compressed));
    await other.close();
    rpc.close();
  });

  it('speaks 1.0 with fd and fifo payloads beside 0.2.x, each connection with a FIFO directory of its own', async () => {
    const legacy = await service.connect();
    const legacyImage = await legacy.openImage(reference);
    const withFd = await service.connectRpc();
    const withFifo = await service.connectRpc();
    const otherFifo = await service.connectRpc();
    assert.equal((await withFd.request<{ payload: string }>('Initialize', { protocolVersion: '1.0', payloads: ['fd'] })).payload, 'fd');
    assert.equal((await withFifo.request<{ payload: string }>('Initialize', { protocolVersion: '1.0', payloads: ['fifo'] })).payload, 'fifo');
    assert.equal((await otherFifo.request<{ payload: string }>('Initialize', { protocolVersion: '1.0', payloads: ['fifo'] })).payload, 'fifo');

    const fdImage = (await withFd.request<{ image: number }>('OpenImage', { reference })).image;
    const fdAnswer = await withFd.call('GetBlob', { image: fdImage, digest: big.digest, size: big.compressed.length });
    assert.equal(fdAnswer.fds.length, 1);
    const fdResult = fdAnswer.result as { transfer: number };
    const fdBytes = readAll(createReadStream('', { fd: fdAnswer.fds[0]! }));

    const fifoImage = (await withFifo.request<{ image: number }>('OpenImage', { reference })).image;
    const fifoResult = await withFifo.request<{ transfer: number; path: string }>('GetBlob', { image: fifoImage, digest: big.digest, size: big.compressed.length });
    const otherImage = (await otherFifo.request<{ image: number }>('OpenImage', { reference })).image;
    const otherResult = await otherFifo.request<{ transfer: number; path: string }>('GetBlob', { image: otherImage, digest: small.digest, size: small.compressed.length });
    assert.notEqual(path.dirname(fifoResult.path), path.dirname(otherResult.path), 'each connection has its own private directory');
    assert.equal(path.dirname(path.dirname(fifoResult.path)), root, 'under the service\'s $XDG_RUNTIME_DIR');

    const [legacyBytes, fdGot, fdFinish, fifoGot, fifoFinish, otherGot, otherFinish] = await Promise.all([
      fetchBlob(legacy, legacyImage, big.digest, big.compressed.length),
      fdBytes,
      withFd.call('FinishTransfer', { transfer: fdResult.transfer }),
      readAll(createReadStream(fifoResult.path)),
      withFifo.call('FinishTransfer', { transfer: fifoResult.transfer }),
      readAll(createReadStream(otherResult.path)),
      otherFifo.call('FinishTransfer', { transfer: otherResult.transfer }),
    ]);
    assert.ok(legacyBytes.equals(big.compressed));
    assert.ok(fdGot.equals(big.compressed));
    assert.ok(fifoGot.equals(big.compressed));
    assert.ok(otherGot.equals(small.compressed));
    assert.deepEqual([fdFinish.error, fifoFinish.error, otherFinish.error], [undefined, undefined, undefined]);

    const fifoDirectory = path.dirname(fifoResult.path);
    withFifo.close();
    await until('the closed connection\'s FIFO directory is removed', () => !existsSync(fifoDirectory));
    assert.ok(existsSync(path.dirname(otherResult.path)), 'the other connection keeps its own');
    otherFifo.close();
    withFd.close();
    await legacy.close();
  });
});
