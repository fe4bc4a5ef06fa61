/**
 * What `serve --listen ws://` refuses: upgrades without the token (401), with a wrong one or one
 * in the URL (401), from a foreign Origin (403), with nothing opened; and on an open socket,
 * text that is not JSON, binary frames, an oversized message (each answered, the connection
 * going on) and a frame past the hard limit (closed with 1009). Plus a stalled reader (the
 * server's RSS stays bounded) and a client vanishing mid-transfer (its fds are freed).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { RpcErrorCodes } from '../../protocol/jsonrpc';
import { WS_SUBPROTOCOL_1 } from '../../protocol/websocket';
import { randomLayer, writeOciImage, type BuiltLayer } from '../harness/oci-builder';
import { sleep, until } from '../harness/service';
import { connectWs, readAll, startWsService, tryUpgrade, type WsService } from '../harness/websocket-service';

const TOKEN = 'test-token-0123456789abcdef';
const ORIGIN = 'http://page.example:8080';

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** A raw socket with the token in Authorization, collecting text messages. */
async function rawSocket(url: string): Promise<{ socket: WebSocket; next: () => Promise<Record<string, unknown>>; closed: Promise<number> }> {
  const socket = new WebSocket(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const queue: Record<string, unknown>[] = [];
  socket.on('message', (data, binary) => {
    if (!binary) queue.push(JSON.parse(String(data)) as Record<string, unknown>);
  });
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const next = async (): Promise<Record<string, unknown>> => {
    await until('a message', () => queue.length > 0);
    return queue.shift()!;
  };
  return { socket, next, closed };
}

describe('serve --listen ws:// refusals and limits', () => {
  let root: string;
  let service: WsService;
  let big: BuiltLayer;
  let reference: string;

  before(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'lp-ws-refuse-'));
    big = randomLayer(96 * 1024 * 1024, 'big.bin');
    writeOciImage(path.join(root, 'layout'), { layers: [big] });
    reference = `oci:${path.join(root, 'layout')}:latest`;
    service = await startWsService({ token: TOKEN, args: ['--allow-origin', ORIGIN, '--debug'] });
  });
  after(async () => {
    await service?.stop();
  });

  it('refuses upgrades without the right token (401) or from a foreign Origin (403), accepts the right ones', async () => {
    const url = service.url;
    assert.deepEqual(await tryUpgrade(url, {}), { status: 401, opened: false });
    assert.deepEqual(await tryUpgrade(url, { headers: { Authorization: 'Bearer wrong-token-0123456789' } }), { status: 401, opened: false });
    assert.deepEqual(await tryUpgrade(url, { protocols: [WS_SUBPROTOCOL_1, 'bearer.wrong-token-0123456789'] }), { status: 401, opened: false });
    assert.deepEqual(await tryUpgrade(`${url}/?token=${TOKEN}`, {}), { status: 401, opened: false }, 'never in the URL');
    const authorized = { headers: { Authorization: `Bearer ${TOKEN}` } };
    assert.deepEqual(await tryUpgrade(url, { ...authorized, origin: 'http://evil.example' }), { status: 403, opened: false });
    assert.deepEqual(await tryUpgrade(url, authorized), { status: 101, opened: true });
    assert.deepEqual(await tryUpgrade(url, { protocols: [WS_SUBPROTOCOL_1, `bearer.${TOKEN}`], origin: ORIGIN }), { status: 101, opened: true });
    assert.ok(!service.stderr().includes(TOKEN), 'the token is never logged');
  });

  it('answers malformed text, binary frames and oversized messages, and goes on serving', async () => {
    const { socket, next, closed } = await rawSocket(service.url);
    socket.send('this is not json');
    assert.equal(((await next()).error as { code: number }).code, RpcErrorCodes.ParseError);
    socket.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal(((await next()).error as { code: number }).code, RpcErrorCodes.InvalidRequest);
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'Initialize', params: { protocolVersion: '1.0', pad: 'x'.repeat(1_200_000) } }));
    const oversized = await next();
    assert.match((oversized.error as { message: string }).message, /limit/);
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'Initialize', params: { protocolVersion: '1.0' } }));
    const init = await next();
    assert.equal(init.id, 8);
    assert.equal((init.result as { payload: string }).payload, 'stream');
    socket.send('x'.repeat(3 * 1024 * 1024));
    assert.equal(await closed, 1009, 'past the hard frame limit the connection is closed');
  });

  it('closes a connection whose text frame is not UTF-8 (1007), and serves the next one', async () => {
    const { socket, closed } = await rawSocket(service.url);
    socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal(await closed, 1007);
    const proxy = await connectWs({ url: service.url, token: TOKEN });
    assert.equal(typeof (await proxy.openImage(reference)), 'number');
    proxy.close();
  });

  it('holds a stalled reader with the server RSS bounded, and frees a client that vanishes mid-transfer', async () => {
    const pid = service.child.pid!;
    const proxy = await connectWs({ url: service.url, token: TOKEN });
    const image = await proxy.openImage(reference);
    const before = rssKiB(pid);
    const fdsBefore = readdirSync(`/proc/${pid}/fd`).length;
    const stalled = await proxy.getBlob(image, big.digest);
    await sleep(2000); // nothing read: the window fills, then the server must stop reading the layer
    const grown = rssKiB(pid) - before;
    assert.ok(grown < 48 * 1024, `server RSS grew ${grown} KiB for a stalled 96 MiB transfer`);
    // Read a little, then vanish without a close handshake.
    const reader = stalled.stream.getReader();
    await reader.read();
    (proxy as unknown as { socket: { terminate?: () => void } }).socket.terminate?.();
    await until('the vanished connection frees its files', () => readdirSync(`/proc/${pid}/fd`).length <= fdsBefore, 10_000);
    const again = await connectWs({ url: service.url, token: TOKEN });
    const second = await again.getBlob(await again.openImage(reference), big.digest);
    const [bytes] = await Promise.all([readAll(second.stream), second.finish()]);
    assert.equal(bytes.length, big.compressed.length);
    await again.shutdown();
  });
});
