/**
 * Cancelling registry work: an aborted OpenImage stops its network requests at once (the
 * manifest, the ping, a token request, the backoff before a retry) and fails with
 * CancelledError, which is never retried and is not the RetryableError of --command-timeout;
 * a ping shared by two opens survives one of them giving up; and the real proxy process exits
 * promptly when its client goes away in the middle of an OpenImage.
 */
import { strict as assert } from 'node:assert';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { CancelledError, RetryableError } from '../../../protocol/errors';
import { openImageByName } from '../../../server/image/open';
import { skopeoErrorCode } from '../../../server/wires/skopeo/error-code';
import { ProxyClosedError } from '../../../clients/typescript';
import { neverAborted } from '../../harness/context';
import { openImage, rejection, TestContexts } from '../../harness/docker-source';
import { match, startFaultProxy, type FaultProxy, type SeenRequest } from '../../harness/fault-proxy';
import { makeLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, type PushedSingleImage } from '../../harness/registry-images';
import { spawnProxy } from '../../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
/** Long enough that no stall or retry timer of the client ends a test's stalled request by itself. */
const PATIENT = { stallTimeoutMs: 20_000, retryDelayMs: 20, retryAttempts: 3 } as const;
const PING = match.path(/^\/v2\/$/);

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** How long `promise` takes to settle, and its error (it must fail). */
async function failureOf(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await promise;
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('expected a failure, got success');
}

describe('cancelling registry requests', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  const contexts = new TestContexts();
  const ref = () => `docker://${proxy.host}/cancel/img:v1`;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    image = await pushImage(registry, 'cancel/img:v1', { layers: [makeLayer({ cancel: 'me' })] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => proxy.clearRules());
  afterEach(() => contexts.closeAll());

  it('an aborted OpenImage stops a stalled manifest request: CancelledError within a second, connection closed', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'delay', ms: 30_000 } });
    const from = proxy.requests.length;
    const controller = new AbortController();
    const opening = openImageByName(ref(), contexts.with({ tlsVerify: false, ...PATIENT }), controller.signal);
    opening.catch(() => undefined);
    await waitFor('the manifest request', () => proxy.requests.slice(from).some((r) => match.manifest()(r)));
    const manifest = proxy.requests.slice(from).find((r) => match.manifest()(r))!;
    controller.abort();
    const { error, ms } = await failureOf(opening);
    assert.ok(error instanceof CancelledError, `got ${String(error)}`);
    assert.ok(ms < 1_000, `took ${ms} ms`);
    assert.equal(skopeoErrorCode(error), 'other', 'a cancellation is not retryable');
    await waitFor('the proxy to see the connection closed', () => manifest.connectionClosedAt !== undefined, 1_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(proxy.requests.slice(from).filter((r) => match.manifest()(r)).length, 1, 'not retried');
  });

  it('tells a caller abort from --command-timeout on the same stall', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'delay', ms: 5_000 }, times: 2 });
    const controller = new AbortController();
    const aborted = openImageByName(ref(), contexts.with({ tlsVerify: false, ...PATIENT }), controller.signal);
    const timedOut = openImage(ref(), contexts.with({ tlsVerify: false, ...PATIENT, retryAttempts: 1, commandTimeoutMs: 400 }));
    aborted.catch(() => undefined);
    setTimeout(() => controller.abort(), 200);
    const cancelled = await rejection(aborted, CancelledError);
    const retryable = await rejection(timedOut, RetryableError);
    assert.match(retryable.message, /--command-timeout/);
    assert.doesNotMatch(cancelled.message, /timed out/);
    assert.equal(skopeoErrorCode(retryable), 'retryable');
    assert.equal(skopeoErrorCode(cancelled), 'other');
  });

  it('an abort during the backoff before a retry ends it: no more tries', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'status', status: 503 }, times: Infinity });
    const from = proxy.requests.length;
    const controller = new AbortController();
    const opening = openImageByName(ref(), contexts.with({ tlsVerify: false, ...PATIENT, retryDelayMs: 1_500, retryAttempts: 5 }), controller.signal);
    opening.catch(() => undefined);
    await waitFor('the first 503', () => proxy.requests.slice(from).some((r) => match.manifest()(r) && r.completed));
    controller.abort();
    const { error, ms } = await failureOf(opening);
    assert.ok(error instanceof CancelledError, `got ${String(error)}`);
    assert.ok(ms < 1_000, `took ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 1_800));
    assert.equal(proxy.requests.slice(from).filter((r) => match.manifest()(r)).length, 1, 'no try after the abort');
  });

  it('a ping shared by two opens goes on when one of them gives up', async () => {
    proxy.addRule({ match: PING, action: { kind: 'delay', ms: 800 } });
    const from = proxy.requests.length;
    const ctx = contexts.with({ tlsVerify: false, ...PATIENT });
    const controller = new AbortController();
    const quitter = openImageByName(ref(), ctx, controller.signal);
    const stayer = openImageByName(ref(), ctx, neverAborted());
    quitter.catch(() => undefined);
    await waitFor('the ping', () => proxy.requests.slice(from).some((r) => PING(r)));
    controller.abort();
    await rejection(quitter, CancelledError);
    const opened = await stayer;
    assert.equal(opened.manifestDigest, image.manifestDigest);
    const pings = proxy.requests.slice(from).filter((r) => PING(r));
    assert.equal(pings.length, 1, 'the ping was not abandoned and asked again');
  });
});

/** A registry that wants a bearer token from a token server that never answers. */
async function startSilentTokenRealm(): Promise<{ registryHost: string; tokenRequests: number; tokenSocketsClosed: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { tokenRequests: 0, tokenSocketsClosed: 0 };
  const tokens = http.createServer((req) => {
    state.tokenRequests++;
    req.socket.once('close', () => state.tokenSocketsClosed++);
    // Never answered: the client has to give up by itself.
  });
  await new Promise<void>((resolve) => tokens.listen(0, '127.0.0.1', resolve));
  const realm = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/token`;
  const registry = http.createServer((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${realm}",service="silent"`, 'Content-Length': '0' }).end();
      return;
    }
    res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${realm}",service="silent",scope="repository:silent/img:pull"`, 'Content-Length': '0' }).end();
  });
  for (const server of [tokens, registry]) server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
  return {
    registryHost: `127.0.0.1:${(registry.address() as AddressInfo).port}`,
    get tokenRequests() {
      return state.tokenRequests;
    },
    get tokenSocketsClosed() {
      return state.tokenSocketsClosed;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([tokens, registry].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}

describe('cancelling a token request', { timeout: 60_000 }, () => {
  const contexts = new TestContexts();
  afterEach(() => contexts.closeAll());

  it('an aborted OpenImage stops waiting for a bearer token and closes its connection', async () => {
    const realm = await startSilentTokenRealm();
    try {
      const controller = new AbortController();
      const opening = openImageByName(`docker://${realm.registryHost}/silent/img:v1`, contexts.with({ tlsVerify: false, ...PATIENT }), controller.signal);
      opening.catch(() => undefined);
      await waitFor('the token request', () => realm.tokenRequests > 0);
      controller.abort();
      const { error, ms } = await failureOf(opening);
      assert.ok(error instanceof CancelledError, `got ${String(error)}`);
      assert.ok(ms < 1_000, `took ${ms} ms`);
      await waitFor('the token connection to close', () => realm.tokenSocketsClosed > 0, 1_000);
      assert.equal(realm.tokenRequests, 1);
    } finally {
      await realm.close();
    }
  });
});

describe('the proxy process when its client goes away during OpenImage', { skip, timeout: 120_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    await pushImage(registry, 'gone/img:v1', { layers: [makeLayer({ gone: 'client' })] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  it('exits within two seconds, its registry request aborted', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'delay', ms: 60_000 } });
    const from = proxy.requests.length;
    // The process's own tuning, from the environment as in production: nothing would time out soon.
    const child = await spawnProxy({ args: ['--tls-verify=false'], env: { LAYERPIPE_STALL_TIMEOUT_MS: '60000', LAYERPIPE_RETRY_ATTEMPTS: '1' } });
    const opening = child.openImage(`docker://${proxy.host}/gone/img:v1`);
    opening.catch(() => undefined);
    let manifest: SeenRequest | undefined;
    await waitFor('the manifest request', () => (manifest = proxy.requests.slice(from).find((r) => match.manifest()(r))) !== undefined);
    const started = Date.now();
    const status = await child.close();
    const took = Date.now() - started;
    assert.ok(took < 2_000, `exited after ${took} ms\n${child.stderr}`);
    assert.equal(child.exitSignal, null, 'exited by itself, not killed');
    assert.equal(status, 0);
    await rejection(opening, ProxyClosedError);
    await waitFor('the registry connection to close', () => manifest!.connectionClosedAt !== undefined, 1_000);
  });
});
