/** The WebSocket service's access checks and addresses (server/wires/websocket/access.ts, address.ts). */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { BearerToken, generateTokenFile, refusalOf } from '../../server/wires/websocket/access';
import { isLoopbackHost, parseWebSocketAddress } from '../../server/wires/websocket/address';

const TOKEN = 'unit-token-0123456789abcdef';

function upgrade(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

test('the token is taken from Authorization or a bearer. subprotocol entry, and nowhere else', () => {
  const token = new BearerToken(TOKEN);
  assert.equal(refusalOf(upgrade({ authorization: `Bearer ${TOKEN}` }), token, []), undefined);
  assert.equal(refusalOf(upgrade({ 'sec-websocket-protocol': `layerpipe.1, bearer.${TOKEN}` }), token, []), undefined);
  assert.equal(refusalOf(upgrade({}), token, [])?.status, 401);
  assert.equal(refusalOf(upgrade({ authorization: `Basic ${TOKEN}` }), token, [])?.status, 401);
  assert.equal(refusalOf(upgrade({ authorization: 'Bearer wrong-token-0123456789' }), token, [])?.status, 401);
  assert.equal(refusalOf(upgrade({ 'sec-websocket-protocol': `layerpipe.1, ${TOKEN}` }), token, [])?.status, 401);
  assert.ok(!refusalOf(upgrade({ authorization: 'Bearer wrong-token-0123456789' }), token, [])!.reason.includes('wrong-token'), 'a refusal never repeats the token');
});

test('an Origin must be allowed; no Origin (not a browser) is fine', () => {
  const token = new BearerToken(TOKEN);
  const auth = { authorization: `Bearer ${TOKEN}` };
  assert.equal(refusalOf(upgrade({ ...auth, origin: 'http://a.example' }), token, [])?.status, 403);
  assert.equal(refusalOf(upgrade({ ...auth, origin: 'http://a.example' }), token, ['http://a.example']), undefined);
  assert.equal(refusalOf(upgrade({ ...auth, origin: 'http://a.example.evil' }), token, ['http://a.example'])?.status, 403);
  assert.equal(refusalOf(upgrade({ origin: 'http://a.example' }), token, ['http://a.example'])?.status, 401);
});

test('tokens too short or with characters a subprotocol cannot carry are refused', () => {
  assert.throws(() => new BearerToken('short'), /16 to 512/);
  assert.throws(() => new BearerToken('has space in it 0123456789'), /16 to 512/);
});

test('a generated token lives in a 0600 file in a 0700 directory, removed by dispose', () => {
  const source = generateTokenFile();
  assert.equal(statSync(source.path).mode & 0o777, 0o600);
  assert.equal(statSync(path.dirname(source.path)).mode & 0o777, 0o700);
  source.dispose();
  assert.throws(() => statSync(source.path), /ENOENT/);
});

test('ws:// and wss:// addresses, default host, loopback', () => {
  assert.deepEqual(parseWebSocketAddress('ws://:8900'), { secure: false, host: '127.0.0.1', port: 8900 });
  assert.deepEqual(parseWebSocketAddress('wss://[::1]:443'), { secure: true, host: '::1', port: 443 });
  assert.deepEqual(parseWebSocketAddress('ws://0.0.0.0:0'), { secure: false, host: '0.0.0.0', port: 0 });
  assert.throws(() => parseWebSocketAddress('ws://host'), /ws:\/\/HOST:PORT/);
  assert.throws(() => parseWebSocketAddress('ws://host:99999'), /out of range/);
  assert.throws(() => parseWebSocketAddress('ws://host:80/path?token=x'), /ws:\/\/HOST:PORT/);
  assert.ok(isLoopbackHost('127.0.0.1') && isLoopbackHost('::1') && isLoopbackHost('localhost'));
  assert.ok(!isLoopbackHost('0.0.0.0') && !isLoopbackHost('192.168.1.2') && !isLoopbackHost('::'));
});
