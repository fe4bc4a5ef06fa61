/**
 * Protocol 1.0 end to end on the SEQPACKET socketpair (and stdio where the framing matters):
 * the real bin/layerpipe driven by the raw test client. Initialize's negotiation, answers equal
 * to the 0.2.x wire's for the same image, 32 requests in flight answered out of order,
 * FinishTransfer waiting only on its own transfer, CancelTransfer, progress, the order of a
 * stream transfer's messages, and how the process ends.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, METHODS, pipeReadable, readAll } from '../../clients/typescript';
import { MAX_STREAM_CHUNK, MAX_STREAM_WINDOW, MIN_STREAM_WINDOW, PARAMS_1, RpcErrorCodes } from '../../protocol/jsonrpc';
import { RpcTestClient, type Response } from '../harness/jsonrpc-client';
import { within } from '../harness/method-suite';
import { makeLayer, randomLayer, sha256, writeOciImage, type BuiltLayer, type WrittenManifest } from '../harness/oci-builder';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-jsonrpc-'));
const ociDir = path.join(tmp, 'oci');
const corruptDir = path.join(tmp, 'corrupt');
const labelsDir = path.join(tmp, 'labels');
/** Runtime configs whose label makes GetConfig's answer about 400 KiB, and about 1.3 MiB. */
// mid: over what a SEQPACKET socket carries in one packet (768 KiB at most, see seqpacket.ts), under 1 MiB as a message.
const LABEL_SIZES = { mid: 700 * 1024, huge: 1000 * 1024 } as const;
const layers: BuiltLayer[] = [makeLayer({ 'hello.txt': 'hello\n' }), randomLayer(3 * 1024 * 1024, 'a.bin'), randomLayer(600 * 1024 + 5, 'b.bin')];
let oci: WrittenManifest;
const ref = (): string => `oci:${ociDir}:latest`;

before(() => {
  oci = writeOciImage(ociDir, { layers }, 'latest');
  writeOciImage(corruptDir, { layers: [layers[1]!] }, 'latest');
  for (const [name, size] of Object.entries(LABEL_SIZES)) {
    writeOciImage(path.join(labelsDir, name), { layers: [layers[0]!], runtimeConfig: { Labels: { big: 'x'.repeat(size) } } }, 'latest');
  }
  const bad = Buffer.from(layers[1]!.compressed);
  bad[5000] = bad[5000]! ^ 0xff;
  writeFileSync(path.join(corruptDir, 'blobs', 'sha256', layers[1]!.digest.slice(7)), bad);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

async function withClient<T>(fn: (c: RpcTestClient) => Promise<T>, spawn: () => RpcTestClient = () => RpcTestClient.spawnSeqpacket()): Promise<T> {
  const c = spawn();
  try {
    return await fn(c);
  } finally {
    c.kill();
    await c.exited;
  }
}

function errorOf(r: Response): { code: number; message: string; data?: { error_code: string; kind?: string } } {
  assert.ok(r.error !== undefined, `expected an error, got ${JSON.stringify(r.result)}`);
  return r.error;
}

const b64 = (data: unknown): Buffer => Buffer.from(data as string, 'base64');

describe('1.0 Initialize', () => {
  it('serves 1.x, refuses 0.x and 2.x clearly, and only once', async () => {
    await withClient(async (c) => {
      const before = errorOf(await c.call('OpenImage', { reference: ref() }));
      assert.equal(before.code, RpcErrorCodes.NotInitialized);
      for (const version of ['0.2.8', '2.0', 'one']) {
        const e = errorOf(await c.call('Initialize', { protocolVersion: version }));
        assert.equal(e.code, RpcErrorCodes.InvalidParams);
        assert.match(e.message, /not served: this server speaks 1\.0\.0/);
      }
      assert.match(errorOf(await c.call('Initialize', { protocolVersion: '0.2' })).message, /skopeo wire/);
      const init = await c.request<Record<string, unknown>>('Initialize', { protocolVersion: '1.x' });
      assert.equal(init.protocolVersion, '1.0.0');
      assert.deepEqual(init.server, { name: 'layerpipe', version: (init.server as { version: string }).version });
      assert.deepEqual(init.methods, Object.keys(PARAMS_1));
      assert.equal(init.payload, 'fd', 'fd first by default on SEQPACKET');
      assert.equal(init.window, 1024 * 1024);
      assert.match(errorOf(await c.call('Initialize', { protocolVersion: '1.0' })).message, /already initialized/);
    });
  });

  it('chooses the payload by the client order among what the connection offers, and clamps the window', async () => {
    await withClient(async (c) => {
      const e = errorOf(await c.call('Initialize', { protocolVersion: '1.0', payloads: ['carrier-pigeon'] }));
      assert.equal(e.code, RpcErrorCodes.InvalidParams);
      assert.match(e.message, /none of the payloads .* is offered on this connection \(offered: fd, fifo, stream\)/);
      const init = await c.initialize(['carrier-pigeon', 'stream', 'fd'], { window: 1 });
      assert.equal(init.payload, 'stream');
      assert.equal(init.window, MIN_STREAM_WINDOW);
    });
    await withClient(async (c) => {
      assert.equal((await c.initialize(['fd'], { window: 2 ** 40 })).window, MAX_STREAM_WINDOW);
    });
    await withClient(async (c) => {
      assert.equal((await c.request<{ payload: string }>('Initialize', { protocolVersion: '1' })).payload, 'stream', 'unasked, stdio chooses stream (its client may be remote)');
      assert.match(errorOf(await c.call('Initialize', { protocolVersion: '1', payloads: ['fd'] })).message, /already initialized/);
    }, () => RpcTestClient.spawnStdio());
    await withClient(async (c) => {
      assert.match(errorOf(await c.call('Initialize', { protocolVersion: '1.0', payloads: ['fd'] })).message, /offered: fifo, stream\)/);
    }, () => RpcTestClient.spawnStdio());
  });
});

describe('1.0 answers', () => {
  it('equal the 0.2.x wire for the same image: manifest, configs, layers, every blob', async () => {
    const old = await ImageProxy.spawn();
    try {
      await old.initialize();
      const oldId = await old.openImage(ref());
      const oldManifest = await old.getManifest(oldId);
      const oldLayers = await old.getLayerInfo(oldId);
      const full = await old.call(METHODS.GetFullConfig, [oldId]);
      const [oldFull] = await Promise.all([readAll(pipeReadable(full.fds[0]!)), old.finishPipe(full.pipeid)]);
      const runtime = await old.call(METHODS.GetConfig, [oldId]);
      const [oldRuntime] = await Promise.all([readAll(pipeReadable(runtime.fds[0]!)), old.finishPipe(runtime.pipeid)]);
      await withClient(async (c) => {
        await c.initialize(['fd']);
        const { image } = await c.request<{ image: number }>('OpenImage', { reference: ref() });
        const m = await c.request<{ digest: string; mediaType: string; data: string }>('GetManifest', { image });
        assert.equal(m.digest, oldManifest.digest);
        assert.deepEqual(b64(m.data), oldManifest.bytes);
        assert.deepEqual(b64(m.data), oci.bytes);
        const f = await c.request<{ digest: string; data: string }>('GetFullConfig', { image });
        assert.deepEqual(b64(f.data), oldFull);
        assert.deepEqual(b64((await c.request<{ data: string }>('GetConfig', { image })).data), oldRuntime);
        const l = await c.request<{ layers: { digest: string; size: number; mediaType: string }[] }>('GetLayerInfo', { image });
        assert.deepEqual(l.layers.map((x) => ({ digest: x.digest, size: x.size, media_type: x.mediaType })), oldLayers);
        for (const layer of oldLayers) {
          const t = await old.getBlob(oldId, layer.digest, layer.size);
          const [oldBytes] = await Promise.all([readAll(t.stream), t.finish()]);
          const r = await c.call('GetBlob', { image, digest: layer.digest, size: layer.size });
          const [bytes, finished] = await Promise.all([readAll(pipeReadable(r.fds[0]!)), c.call('FinishTransfer', { transfer: (r.result as { transfer: number }).transfer })]);
          assert.equal(finished.error, undefined);
          assert.deepEqual(bytes, oldBytes);
        }
      });
    } finally {
      await old.close();
    }
  });

  it('32 requests in flight are answered as each finishes, each to its own id', async () => {
    await withClient(async (c) => {
      await c.initialize(['fd']);
      const { image } = await c.request<{ image: number }>('OpenImage', { reference: ref() });
      const blob = await c.call('GetBlob', { image, digest: layers[1]!.digest, size: layers[1]!.compressed.length });
      const transfer = (blob.result as { transfer: number }).transfer;
      // A FinishTransfer that cannot end until its pipe is read, sent first.
      const slow = c.call('FinishTransfer', { transfer }, 'slow');
      const quick: Promise<Response>[] = [];
      for (let i = 0; i < 31; i++) {
        const method = ['GetManifest', 'GetLayerInfo', 'GetConfig'][i % 3]!;
        quick.push(c.call(method, { image }, i % 2 === 0 ? 1000 + i : `q${i}`));
      }
      const answers = await within(20_000, Promise.all(quick), 'the 31 quick answers');
      answers.forEach((r, i) => {
        assert.equal(r.id, i % 2 === 0 ? 1000 + i : `q${i}`);
        assert.equal(r.error, undefined);
        const key = ['digest', 'layers', 'data'][i % 3]!;
        assert.ok(key in (r.result as object), `answer ${i} is the ${['GetManifest', 'GetLayerInfo', 'GetConfig'][i % 3]} one`);
      });
      const ids = c.received.filter((m) => 'id' in m.message).map((m) => m.message.id);
      assert.ok(!ids.includes('slow'), 'the FinishTransfer sent first is still pending');
      const [bytes, finished] = await Promise.all([readAll(pipeReadable(blob.fds[0]!)), slow]);
      assert.equal(finished.error, undefined);
      assert.equal(sha256(bytes), layers[1]!.digest);
      const order = c.received.filter((m) => 'id' in m.message).map((m) => m.message.id);
      assert.equal(order.at(-1), 'slow', 'the first request sent was answered last');
    });
  });

  it('FinishTransfer waits only for its own transfer; CancelTransfer frees one and the rest go on', async () => {
    await withClient(async (c) => {
      await c.initialize(['fd']);
      const { image } = await c.request<{ image: number }>('OpenImage', { reference: ref() });
      const get = async (i: number): Promise<{ transfer: number; stream: Readable }> => {
        const r = await c.call('GetBlob', { image, digest: layers[i]!.digest, size: layers[i]!.compressed.length });
        return { transfer: (r.result as { transfer: number }).transfer, stream: pipeReadable(r.fds[0]!) };
      };
      const unread = await get(1);
      const cancelled = await get(1);
      const read = await get(2);
      const unreadFinish = c.call('FinishTransfer', { transfer: unread.transfer });
      const [bytes, done] = await within(10_000, Promise.all([readAll(read.stream), c.call('FinishTransfer', { transfer: read.transfer })]), 'the read transfer');
      assert.equal(done.error, undefined);
      assert.equal(sha256(bytes), layers[2]!.digest);
      assert.equal((await c.call('CancelTransfer', { transfer: cancelled.transfer })).result, null);
      const rest = await within(5_000, readAll(cancelled.stream), 'EOF on the cancelled transfer');
      assert.ok(rest.length < layers[1]!.compressed.length);
      const gone = errorOf(await c.call('FinishTransfer', { transfer: cancelled.transfer }));
      assert.equal(gone.code, RpcErrorCodes.InvalidParams);
      const [unreadBytes, unreadDone] = await within(10_000, Promise.all([readAll(unread.stream), unreadFinish]), 'the first transfer');
      assert.equal(unreadDone.error, undefined);
      assert.equal(sha256(unreadBytes), layers[1]!.digest);
    });
  });

  it('progress: at most one every 100 ms, after the response, ending with the total', async () => {
    await withClient(async (c) => {
      await c.initialize(['fd']);
      const { image } = await c.request<{ image: number }>('OpenImage', { reference: ref() });
      const size = layers[1]!.compressed.length;
      const r = await c.call('GetBlob', { image, digest: layers[1]!.digest, size, progress: true });
      const transfer = (r.result as { transfer: number }).transfer;
      // A plain socket over the fd reads 64 KiB at a time (the client's reader takes up to 1 MiB),
      // so the pipe drains only as fast as this slow reader.
      const stream = new Socket({ fd: r.fds[0]!, readable: true, writable: false });
      const times: number[] = [];
      c.on(({ message }) => {
        if (message.method === 'transfer/progress') times.push(Date.now());
      });
      // A slow reader: 64 KiB every 20 ms.
      let total = 0;
      stream.pause();
      for (;;) {
        const chunk = stream.read(64 * 1024) as Buffer | null;
        if (chunk !== null) total += chunk.length;
        else if (stream.readableEnded) break;
        else await new Promise((resolve) => setTimeout(resolve, 20));
        if (stream.readableEnded) break;
      }
      await c.call('FinishTransfer', { transfer });
      assert.equal(total, size);
      const progress = c.notifications('transfer/progress');
      assert.ok(progress.length >= 3, `${progress.length} progress notifications`);
      assert.ok(progress.every((p) => p.transfer === transfer && p.total === size));
      assert.deepEqual(progress.at(-1), { transfer, bytes: size, total: size });
      const bytes = progress.map((p) => p.bytes as number);
      assert.deepEqual(bytes, [...bytes].sort((a, b) => a - b), 'never decreasing');
      for (let i = 1; i < times.length - 1; i++) assert.ok(times[i]! - times[i - 1]! >= 80, `progress ${i} came ${times[i]! - times[i - 1]!} ms after the one before`);
      const responseAt = c.received.findIndex((m) => m.message.id === r.id);
      const firstProgress = c.received.findIndex((m) => m.message.method === 'transfer/progress');
      assert.ok(responseAt < firstProgress, 'the response came first');
    });
  });
});

describe('1.0 stream transfers', () => {
  for (const framing of ['seqpacket', 'stdio'] as const) {
    it(`${framing}: response, then data chunks in order, then transfer/end; a corrupt blob ends with the mismatch`, async () => {
      const spawn = (): RpcTestClient => (framing === 'stdio' ? RpcTestClient.spawnStdio() : RpcTestClient.spawnSeqpacket());
      await withClient(async (c) => {
        await c.initialize(['stream']);
        const { image } = await c.request<{ image: number }>('OpenImage', { reference: ref() });
        const r = await c.call('GetBlob', { image, digest: layers[1]!.digest, size: layers[1]!.compressed.length });
        const { transfer, size } = r.result as { transfer: number; size: number };
        assert.equal(size, layers[1]!.compressed.length);
        const [bytes, finished] = await Promise.all([readAll(c.streamReadable(transfer)), c.call('FinishTransfer', { transfer })]);
        assert.equal(finished.result, null);
        assert.equal(sha256(bytes), layers[1]!.digest);
        const mine = c.received.filter((m) => m.message.id === r.id || (m.message.params as { transfer?: number } | undefined)?.transfer === transfer);
        assert.equal(mine[0]!.message.id, r.id, 'the response first');
        assert.deepEqual(mine.at(-1)!.message, { jsonrpc: '2.0', method: 'transfer/end', params: { transfer } });
        const chunks = mine.slice(1, -1).map((m) => b64((m.message.params as { data: string }).data).length);
        const limit = MAX_STREAM_CHUNK;
        assert.ok(chunks.every((n) => n > 0 && n <= limit), `chunks ${chunks.join(',')} within ${limit}`);

        const bad = await c.request<{ image: number }>('OpenImage', { reference: `oci:${corruptDir}:latest` });
        const b = await c.call('GetBlob', { image: bad.image, digest: layers[1]!.digest, size: layers[1]!.compressed.length });
        const badTransfer = (b.result as { transfer: number }).transfer;
        const [badBytes, badFinish] = await Promise.all([readAll(c.streamReadable(badTransfer)), c.call('FinishTransfer', { transfer: badTransfer })]);
        assert.equal(badBytes.length, layers[1]!.compressed.length, 'every byte before the error');
        const e = errorOf(badFinish);
        assert.equal(e.code, RpcErrorCodes.VerificationFailed);
        assert.deepEqual(e.data, { error_code: 'other', kind: 'LP_ERR_DIGEST_MISMATCH' });
        assert.deepEqual(c.streamEnd(badTransfer), { error: e });
      }, spawn);
    });
  }

  it('CancelTransfer of a stream transfer: transfer/end says cancelled, the connection serves on', async () => {
    await withClient(async (c) => {
      await c.initialize(['stream'], { window: MIN_STREAM_WINDOW });
      const { image } = await c.request<{ image: number }>('OpenImage', { reference: ref() });
      const r = await c.call('GetBlob', { image, digest: layers[1]!.digest, size: layers[1]!.compressed.length });
      const transfer = (r.result as { transfer: number }).transfer;
      await within(5_000, (async () => {
        while (c.streamBuffered(transfer) < MIN_STREAM_WINDOW) await new Promise((resolve) => setTimeout(resolve, 10));
      })(), 'the first window');
      assert.equal((await c.call('CancelTransfer', { transfer })).result, null);
      await within(5_000, (async () => {
        while (c.streamEnd(transfer) === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
      })(), 'transfer/end');
      assert.equal(c.streamEnd(transfer)!.error?.code, RpcErrorCodes.Cancelled);
      assert.equal(c.streamBuffered(transfer), MIN_STREAM_WINDOW, 'nothing past the window was sent');
      assert.ok('digest' in (await c.request<object>('GetManifest', { image })));
    });
  });
});

describe('1.0 answers too large to travel', () => {
  it('become a -32603 error naming the size: over the socket buffer on SEQPACKET, over 1 MiB on stdio', async () => {
    const configOf = async (c: RpcTestClient, name: string): Promise<Response> => {
      const { image } = await c.request<{ image: number }>('OpenImage', { reference: `oci:${path.join(labelsDir, name)}:latest` });
      return c.call('GetConfig', { image });
    };
    await withClient(async (c) => {
      await c.initialize(['fd']);
      const e = errorOf(await configOf(c, 'mid'));
      assert.equal(e.code, RpcErrorCodes.InternalError);
      assert.match(e.message, /the response \(\d+ bytes\) is larger than this socket carries in one packet/);
      assert.ok('layers' in (await c.request<object>('GetLayerInfo', { image: 1 })), 'still serving');
    });
    await withClient(async (c) => {
      await c.initialize(['stream']);
      const mid = await configOf(c, 'mid');
      const config = JSON.parse(b64((mid.result as { data: string }).data).toString()) as { Labels: { big: string } };
      assert.equal(config.Labels.big.length, LABEL_SIZES.mid);
      const e = errorOf(await configOf(c, 'huge'));
      assert.equal(e.code, RpcErrorCodes.InternalError);
      assert.match(e.message, /the response \(\d+ bytes\) is larger than the 1048576-byte message limit/);
    }, () => RpcTestClient.spawnStdio());
  });
});

describe('1.0 process lifetime', () => {
  for (const framing of ['seqpacket', 'stdio'] as const) {
    it(`${framing}: Shutdown answers null and exits 0; end of input exits 0`, async () => {
      const spawn = (): RpcTestClient => (framing === 'stdio' ? RpcTestClient.spawnStdio() : RpcTestClient.spawnSeqpacket());
      const a = spawn();
      const shutdown = await a.call('Shutdown');
      assert.deepEqual(shutdown.result, null);
      assert.equal(await within(5_000, a.exited, 'exit after Shutdown'), 0);
      const b = spawn();
      await b.initialize([framing === 'stdio' ? 'stream' : 'fd']);
      await b.request('OpenImage', { reference: ref() });
      b.close();
      assert.equal(await within(5_000, b.exited, 'exit at end of input'), 0);
    });
  }

  it('stdio: requests received before the end of stdin are all answered', async () => {
    const c = RpcTestClient.spawnStdio();
    await c.initialize(['stream']);
    const answers = [c.call('OpenImage', { reference: ref() }), c.call('OpenImageOptional', { reference: `oci:${ociDir}:nope` }), c.call('Nope')];
    c.close();
    const [opened, optional, unknown] = await within(10_000, Promise.all(answers), 'the answers');
    assert.ok(((opened.result as { image: number }).image) > 0);
    assert.deepEqual(optional.result, { image: null });
    assert.equal(errorOf(unknown).code, RpcErrorCodes.MethodNotFound);
    assert.equal(await c.exited, 0);
  });
});
