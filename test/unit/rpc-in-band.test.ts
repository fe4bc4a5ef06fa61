/**
 * The 1.0 client's in-band receiving: `transfer/data` recognised from the server writer's bytes,
 * credit that keeps flowing whatever the reader's pace (it used to stall once the proxy had used
 * all of it), and a chunk that is not base64 failing the transfer clearly, through the client's
 * own stdio reader and RpcImageProxy against a scripted peer.
 */
import { strict as assert } from 'node:assert';
import { randomBytes, randomInt } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { AbstractMessageWriter, type Message, type MessageWriter } from 'vscode-jsonrpc/node';
import { ProxyRpcError, RpcImageProxy, readAll, type RpcTransport } from '../../clients/typescript';
import { InBandStream } from '../../clients/typescript/rpc/in-band';
import { ContentLengthMessageReader } from '../../clients/typescript/rpc/stdio-messages';
import { TransferDataRoute, transferDataText } from '../../clients/typescript/rpc/transfer-data';
import { RpcErrorCodes } from '../../protocol/jsonrpc';
import { Base64Chunk } from '../../server/wires/jsonrpc/base64-chunk';
import { serializeMessage } from '../../server/wires/jsonrpc/writer';

describe('transferDataText', () => {
  it('finds the transfer and the base64 bytes in what the server writer makes, and nothing else', () => {
    const bytes = randomBytes(1000);
    const body = serializeMessage({ jsonrpc: '2.0', method: 'transfer/data', params: { transfer: 12345, data: new Base64Chunk(bytes) } } as never);
    const found = transferDataText(body);
    assert.equal(found?.transfer, 12345);
    assert.equal(found?.text.toString('latin1'), bytes.toString('base64'));
    const other = (json: string): unknown => transferDataText(Buffer.from(json));
    assert.equal(other('{"jsonrpc":"2.0","method":"transfer/data","params":{"transfer":1,"data":"QQ\\u003d\\u003d"}}'), undefined); // escapes: parse it
    assert.equal(other('{"jsonrpc":"2.0","method":"transfer/data","params":{"data":"QQ==","transfer":1}}'), undefined);
    assert.equal(other('{"jsonrpc":"2.0","method":"transfer/end","params":{"transfer":1}}'), undefined);
    assert.equal(other('{"jsonrpc":"2.0","method":"transfer/data","params":{"transfer":1,"data":"QQ=="},"x":"y"}}'), undefined);
  });
});

describe('InBandStream credit', () => {
  it('keeps credit flowing to a proxy that sends whenever it may, for readers of any pace', async () => {
    for (let round = 0; round < 20; round++) {
      const window = 64 * 1024;
      const total = 2 * 1024 * 1024 + randomInt(100_000);
      let credit = window;
      let sent = 0;
      const grants: number[] = [];
      // The proxy: sends chunks of up to 16 KiB while it has credit, never more.
      const send = (): void => {
        while (credit > 0 && sent < total) {
          const length = Math.min(credit, randomInt(1, 16 * 1024), total - sent);
          credit -= length;
          sent += length;
          stream.onData(Buffer.alloc(length, 7));
        }
        if (sent === total) stream.onEnd({ transfer: 1 });
      };
      const stream: InBandStream = new InBandStream(1, window, (bytes) => {
        grants.push(bytes);
        credit += bytes;
        setImmediate(send);
      }, () => assert.fail('nothing was refused'));
      send();
      let received = 0;
      const pace = round % 3;
      const reading = (async () => {
        for await (const chunk of stream) {
          received += (chunk as Buffer).length;
          if (pace === 1 && randomInt(4) === 0) await nextTurn();
          if (pace === 2) await new Promise((resolve) => setTimeout(resolve, randomInt(2)));
        }
      })();
      const stalled = new Promise((_, reject) => setTimeout(() => reject(new Error(`stalled at ${received} of ${total} bytes (sent ${sent}, credit ${credit})`)), 20_000).unref());
      await Promise.race([reading, stalled]);
      assert.equal(received, total);
      assert.equal(await stream.outcome, undefined);
      assert.ok(grants.every((g) => g > 0));
    }
  });
});

/** A scripted 1.0 peer for the client: answers Initialize and GetBlob, then sends `chunk` as transfer 1's data. */
function scriptedPeer(chunk: string): { transport: RpcTransport; requests: string[] } {
  const fromPeer = new PassThrough();
  const requests: string[] = [];
  const transferData = new TransferDataRoute();
  const send = (message: object): void => {
    const body = Buffer.from(JSON.stringify(message));
    fromPeer.write(`Content-Length: ${body.length}\r\n\r\n`);
    fromPeer.write(body);
  };
  class PeerWriter extends AbstractMessageWriter implements MessageWriter {
    async write(message: Message): Promise<void> {
      const { id, method } = message as { id?: number; method?: string };
      if (method === undefined || id === undefined) return; // credit
      requests.push(method);
      if (method === 'Initialize') send({ jsonrpc: '2.0', id, result: { protocolVersion: '1.0', server: { name: 'layerpipe', version: 'test' }, methods: [], payload: 'stream', window: 65536 } });
      if (method === 'GetBlob') {
        send({ jsonrpc: '2.0', id, result: { transfer: 1, size: 6 } });
        send({ jsonrpc: '2.0', method: 'transfer/data', params: { transfer: 1, data: chunk } });
      }
      if (method === 'CancelTransfer') {
        send({ jsonrpc: '2.0', method: 'transfer/end', params: { transfer: 1, error: { code: RpcErrorCodes.Cancelled, message: 'cancelled' } } });
        send({ jsonrpc: '2.0', id, result: null });
      }
      if (method === 'FinishTransfer') send({ jsonrpc: '2.0', id, error: { code: RpcErrorCodes.Cancelled, message: 'cancelled' } });
    }

    end(): void {}
  }
  const transport: RpcTransport = {
    reader: new ContentLengthMessageReader(fromPeer, transferData),
    writer: new PeerWriter(),
    payloads: ['stream'],
    tapTransferData: (tap) => transferData.set(tap),
    close: async () => {
      fromPeer.end();
      return null;
    },
  };
  return { transport, requests };
}

describe('a transfer/data chunk that is not base64', () => {
  it('fails the stream and finish() with an error that says so, and cancels the transfer', async () => {
    const { transport, requests } = scriptedPeer('aGVs!G8h');
    const proxy = await RpcImageProxy.connect(transport);
    const blob = await proxy.getBlob(1, `sha256:${'0'.repeat(64)}`);
    const [read, finished] = await Promise.allSettled([readAll(blob.stream), blob.finish()]);
    for (const outcome of [read, finished]) {
      assert.equal(outcome.status, 'rejected');
      const err = (outcome as PromiseRejectedResult).reason as unknown;
      assert.ok(err instanceof ProxyRpcError, String(err));
      assert.equal(err.rpcCode, RpcErrorCodes.InvalidParams);
      assert.match(err.message, /transfer\/data of transfer 1 is not padded standard base64: byte 4 \("!"\)/);
    }
    assert.ok(requests.includes('CancelTransfer'), requests.join(', '));
    await proxy.close();
  });

  it('passes a good chunk through the same path', async () => {
    const { transport } = scriptedPeer(Buffer.from('hello!').toString('base64'));
    const proxy = await RpcImageProxy.connect(transport);
    const blob = await proxy.getBlob(1, `sha256:${'0'.repeat(64)}`);
    const chunks: Buffer[] = [];
    blob.stream.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(Buffer.concat(chunks).toString(), 'hello!');
    await proxy.close();
  });
});
