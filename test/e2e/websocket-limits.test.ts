/**
 * The WebSocket service in this process (server/wires/websocket/service.ts): past its connection
 * limit an upgrade gets 503 and nothing opens; a freed slot is taken again; stop() refuses new
 * upgrades and closes the open connections with 1001.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../server/log';
import { BearerToken } from '../../server/wires/websocket/access';
import { WebSocketService } from '../../server/wires/websocket/service';
import { closeTestContext, testContext } from '../harness/context';
import { until } from '../harness/service';
import { connectWs, tryUpgrade } from '../harness/websocket-service';

const TOKEN = 'limits-token-0123456789abcdef';

test('the connection limit answers 503, and stop() closes what is open', async () => {
  const ctx = testContext();
  const service = new WebSocketService({
    ctx, guard: undefined, log: createLogger(false), graceMs: 200,
    address: { secure: false, host: '127.0.0.1', port: 0 },
    token: new BearerToken(TOKEN), allowedOrigins: [], maxConnections: 1,
  });
  const url = await service.start();
  try {
    const first = await connectWs({ url, token: TOKEN });
    assert.deepEqual(await tryUpgrade(url, { headers: { Authorization: `Bearer ${TOKEN}` } }), { status: 503, opened: false });
    first.close();
    await until('the slot is free', () => service.connectionCount === 0);
    const second = await connectWs({ url, token: TOKEN });
    await service.stop();
    await second.closed;
    await assert.rejects(second.openImage('oci:/nonexistent'), /WebSocket closed \(1001 the service is stopping\)/);
    assert.equal(service.connectionCount, 0);
    assert.equal((await tryUpgrade(url, { headers: { Authorization: `Bearer ${TOKEN}` } })).opened, false);
  } finally {
    await service.stop();
    await closeTestContext(ctx);
  }
});
