/**
 * `$/cancelRequest` of an OpenImage whose registry connection is still being set up: a TCP
 * listener accepts and never answers the TLS ClientHello. The cancelled OpenImage is answered
 * at once (not after undici's 10 s connect timeout), the proxy closes its socket to the
 * listener, and the connection goes on serving.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RpcErrorCodes } from '../../protocol/jsonrpc';
import { RpcTestClient } from '../harness/jsonrpc-client';
import { within } from '../harness/method-suite';
import { emptyAuthFilePath } from '../harness/registry-images';

interface StalledConnection {
  readonly socket: Socket;
  /** Bytes the proxy sent (its ClientHello); nothing is ever answered. */
  received: number;
  closed: boolean;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('1.0 $/cancelRequest of an OpenImage stalled in the TLS handshake', { timeout: 60_000 }, () => {
  let server: Server;
  let port: number;
  const connections: StalledConnection[] = [];

  before(async () => {
    server = createServer((socket) => {
      const seen: StalledConnection = { socket, received: 0, closed: false };
      connections.push(seen);
      socket.on('data', (chunk: Buffer) => { seen.received += chunk.length; });
      socket.on('close', () => { seen.closed = true; });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const c of connections) c.socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('answers Cancelled within a second and closes the socket being connected; the proxy keeps serving', async () => {
    // Nothing in the process would give up on the stall by itself within the test.
    const env = { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath(), LAYERPIPE_STALL_TIMEOUT_MS: '60000', LAYERPIPE_RETRY_ATTEMPTS: '1' };
    const c = RpcTestClient.spawnSeqpacket(['--insecure-policy'], env);
    try {
      await c.initialize(['fd']);
      const cancelled = c.call('OpenImage', { reference: `docker://127.0.0.1:${port}/stalled/img:v1` }, 'to-cancel');
      await waitFor('the ClientHello', () => connections.some((s) => s.received > 0), 10_000);
      const stalled = connections.find((s) => s.received > 0);
      assert.ok(stalled !== undefined);
      const started = Date.now();
      await c.notify('$/cancelRequest', { id: 'to-cancel' });
      const answer = await within(5_000, cancelled, 'the cancelled OpenImage');
      const took = Date.now() - started;
      assert.equal(answer.error?.code, RpcErrorCodes.Cancelled, JSON.stringify(answer));
      assert.ok(took < 1_000, `answered after ${took} ms`);
      await waitFor('the proxy to close its socket to the stalled listener', () => stalled.closed, 1_000);
      // The connection still serves.
      assert.equal((await within(2_000, c.call('Nope'), 'a later request')).error?.code, RpcErrorCodes.MethodNotFound);
      assert.equal(connections.length, 1, 'nothing was retried after the cancel');
    } finally {
      c.kill();
      await c.exited;
    }
  });
});
