/**
 * Protocol 1.0 `fifo` payloads against the real binary, on the SEQPACKET socketpair and on
 * `serve --stdio`: GetBlob and GetRawBlob bytes arrive whole through the FIFO path the result
 * names, FinishTransfer answers null, the FIFO is gone once opened, a FIFO nobody opens fails
 * its transfer with a clear error (the server keeps serving), CancelTransfer removes an unopened
 * FIFO, and the private 0700 directory goes with the connection.
 */
import assert from 'node:assert/strict';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RpcErrorCodes } from '../../protocol/jsonrpc';
import { RpcTestClient } from '../harness/jsonrpc-client';
import { randomLayer, writeOciImage, type BuiltLayer } from '../harness/oci-builder';

const FIFO_TIMEOUT_MS = 1500;

interface TransferAnswer {
  transfer: number;
  size: number;
  path?: string;
}

async function readFifo(file: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of createReadStream(file)) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

const until = async (what: string, test: () => boolean, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

let root: string;
let layers: BuiltLayer[];
let reference: string;

before(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'fifo-payload-'));
  layers = [randomLayer(3 * 1024 * 1024 + 17, 'big.bin'), randomLayer(1000, 'small.bin')];
  writeOciImage(path.join(root, 'image'), { layers }, 'latest');
  reference = `oci:${path.join(root, 'image')}:latest`;
});
after(() => rmSync(root, { recursive: true, force: true }));

for (const kind of ['seqpacket', 'stdio'] as const) {
  describe(`fifo payload over ${kind}`, () => {
    let client: RpcTestClient;
    let image: number;
    let fifoDirectory: string | undefined;

    before(async () => {
      const env = { ...process.env, LAYERPIPE_FIFO_OPEN_TIMEOUT_MS: String(FIFO_TIMEOUT_MS), XDG_RUNTIME_DIR: root };
      client = kind === 'seqpacket' ? RpcTestClient.spawnSeqpacket(['--insecure-policy'], env) : RpcTestClient.spawnStdio(['--insecure-policy'], env);
      const init = await client.initialize(['fifo', 'stream']);
      assert.equal(init.payload, 'fifo');
      ({ image } = await client.request<{ image: number }>('OpenImage', { reference }));
    });
    after(() => client.kill());

    it('GetBlob: the bytes arrive whole through the FIFO, FinishTransfer answers null, the FIFO is gone once opened', async () => {
      const layer = layers[0]!;
      const answer = await client.request<TransferAnswer>('GetBlob', { image, digest: layer.digest, size: layer.compressed.length });
      assert.equal(answer.size, layer.compressed.length);
      assert.ok(answer.path !== undefined && path.isAbsolute(answer.path), `a FIFO path: ${JSON.stringify(answer)}`);
      fifoDirectory = path.dirname(answer.path);
      assert.equal(path.dirname(fifoDirectory), root, 'under $XDG_RUNTIME_DIR');
      assert.equal(statSync(fifoDirectory).mode & 0o777, 0o700);
      assert.ok(statSync(answer.path).isFIFO());
      const [bytes, finished] = await Promise.all([readFifo(answer.path), client.call('FinishTransfer', { transfer: answer.transfer })]);
      assert.ok(bytes.equals(layer.compressed), `${bytes.length} bytes, expected ${layer.compressed.length}`);
      assert.deepEqual([finished.error, finished.result], [undefined, null]);
      assert.equal(existsSync(answer.path), false);
    });

    it('GetRawBlob through a FIFO', async () => {
      const layer = layers[1]!;
      const answer = await client.request<TransferAnswer>('GetRawBlob', { image, digest: layer.digest });
      const [bytes, finished] = await Promise.all([readFifo(answer.path!), client.call('FinishTransfer', { transfer: answer.transfer })]);
      assert.ok(bytes.equals(layer.compressed));
      assert.equal(finished.error, undefined);
    });

    it('a FIFO nobody opens fails its transfer with a clear error and disappears; the connection keeps serving', async () => {
      const layer = layers[1]!;
      const answer = await client.request<TransferAnswer>('GetBlob', { image, digest: layer.digest, size: layer.compressed.length });
      const started = Date.now();
      const finished = await client.call('FinishTransfer', { transfer: answer.transfer });
      assert.ok(finished.error !== undefined, 'FinishTransfer reports the failure');
      assert.match(finished.error.message, /^nobody opened the FIFO \S+ \(blob sha256:[0-9a-f]{64}\) within 1.5 s: write: broken pipe$/);
      assert.equal(finished.error.code, RpcErrorCodes.BrokenPipe, 'a reader that never came is a broken pipe');
      assert.deepEqual(finished.error.data, { error_code: 'EPIPE', kind: 'LP_ERR_BROKEN_PIPE' });
      assert.ok(Date.now() - started >= FIFO_TIMEOUT_MS - 200, 'after the open timeout');
      assert.equal(existsSync(answer.path!), false);
      const info = await client.request<{ layers: unknown[] }>('GetLayerInfo', { image });
      assert.equal(info.layers.length, 2);
    });

    it('CancelTransfer removes a FIFO nobody opened yet', async () => {
      const layer = layers[0]!;
      const answer = await client.request<TransferAnswer>('GetBlob', { image, digest: layer.digest, size: layer.compressed.length });
      assert.ok(existsSync(answer.path!));
      const cancelled = await client.call('CancelTransfer', { transfer: answer.transfer });
      assert.deepEqual([cancelled.error, cancelled.result], [undefined, null]);
      assert.equal(existsSync(answer.path!), false);
    });

    it('removes the private directory when the connection ends', async () => {
      assert.ok(fifoDirectory !== undefined && existsSync(fifoDirectory));
      client.close();
      assert.equal(await client.exited, 0);
      await until('the FIFO directory is removed', () => !existsSync(fifoDirectory!));
    });
  });
}
