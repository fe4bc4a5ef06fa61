/**
 * Registry state belongs to the SystemContext, not to the process: two contexts used at the
 * same time against the same real registry keep their own settings (tries, User-Agent,
 * logger), their own identity and tokens, and their own connections; closing one context's
 * pool ends its connections and requests only.
 */
import { strict as assert } from 'node:assert';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { AccessDeniedError, CancelledError, RetryableError } from '../../../protocol/errors';
import type { Logger } from '../../../server/log';
import { closeTestContext, neverAborted } from '../../harness/context';
import { openImage, readBlob, readStream, rejection, TestContexts } from '../../harness/docker-source';
import { match, startFaultProxy, type FaultProxy, type RequestMatcher, type SeenRequest } from '../../harness/fault-proxy';
import { randomLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, type PushedSingleImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const FAST = { retryDelayMs: 20, stallTimeoutMs: 5_000 } as const;

/** A logger that keeps its lines, as --debug would print them. */
function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: { debugEnabled: true, debug: (m) => lines.push(m), warn: (m) => lines.push(m) } };
}

/** Requests whose User-Agent starts with `prefix` (each context below has its own). */
const from = (prefix: string, inner: RequestMatcher = match.any()): RequestMatcher =>
  (r) => String(r.headers['user-agent']).startsWith(`${prefix} `) && inner(r);

const connectionsOf = (requests: readonly SeenRequest[]): Set<number> => new Set(requests.map((r) => r.connection));

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('two contexts against one registry', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  const layer = randomLayer(2 * 1024 * 1024);
  const contexts = new TestContexts();
  const ref = () => `docker://${proxy.host}/ctx/img:v1`;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    image = await pushImage(registry, 'ctx/img:v1', { layers: [layer] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => proxy.clearRules());
  afterEach(() => contexts.closeAll());

  it('each retries as many times as its own settings say, sends its own User-Agent and logs to its own logger', async () => {
    const a = recordingLogger();
    const b = recordingLogger();
    const ctxA = contexts.with({ tlsVerify: false, ...FAST, retryAttempts: 1 }, { userAgentPrefix: 'ctx-a', log: a.log });
    const ctxB = contexts.with({ tlsVerify: false, ...FAST, retryAttempts: 3 }, { userAgentPrefix: 'ctx-b', log: b.log });
    proxy.addRule({ match: from('ctx-a', match.manifest()), action: { kind: 'status', status: 503 }, times: Infinity });
    proxy.addRule({ match: from('ctx-b', match.manifest()), action: { kind: 'status', status: 503 }, times: 2 });
    const start = proxy.requests.length;
    const [resultA, resultB] = await Promise.allSettled([openImage(ref(), ctxA), openImage(ref(), ctxB)]);

    assert.equal(resultA.status, 'rejected');
    assert.ok(resultA.reason instanceof RetryableError, String(resultA.reason));
    assert.equal(resultB.status, 'fulfilled');
    assert.equal(resultB.value.manifestDigest, image.manifestDigest);

    const seen = proxy.requests.slice(start);
    assert.equal(seen.filter(from('ctx-a', match.manifest())).length, 1, 'A: one try');
    assert.equal(seen.filter(from('ctx-b', match.manifest())).length, 3, 'B: two retries');
    assert.ok(seen.every((r) => from('ctx-a')(r) || from('ctx-b')(r)), 'every request names one of the two');
    assert.ok(seen.filter(from('ctx-a')).some((r) => r.path === '/v2/') && seen.filter(from('ctx-b')).some((r) => r.path === '/v2/'), 'each pinged for itself');
    const shared = [...connectionsOf(seen.filter(from('ctx-a')))].filter((c) => connectionsOf(seen.filter(from('ctx-b'))).has(c));
    assert.deepEqual(shared, [], 'no connection carries both contexts');

    const manifestLines = (lines: string[]) => lines.filter((l) => /\/v2\/ctx\/img\/manifests\/v1 -> 503/.test(l)).length;
    assert.equal(manifestLines(a.lines), 1);
    assert.equal(manifestLines(b.lines), 2);
    assert.ok(!a.lines.some((l) => l.includes('retrying')), 'A never retried');
    assert.ok(b.lines.some((l) => l.includes('retrying')));
  });

  it('closing one context\'s pool ends its requests and connections, and leaves the other\'s running', async () => {
    const ctxA = contexts.with({ tlsVerify: false, ...FAST, retryAttempts: 3 }, { userAgentPrefix: 'ctx-a' });
    const ctxB = contexts.with({ tlsVerify: false, ...FAST, retryAttempts: 3 }, { userAgentPrefix: 'ctx-b' });
    const start = proxy.requests.length;
    const [imageA, imageB] = await Promise.all([openImage(ref(), ctxA), openImage(ref(), ctxB)]);
    // A's blob stalls for good; B's pauses for a while and then goes on.
    proxy.addRule({ match: from('ctx-a', match.blobGet(layer.digest)), action: { kind: 'stall', afterBytes: 100_000 } });
    proxy.addRule({ match: from('ctx-b', match.blobGet(layer.digest)), action: { kind: 'stall', afterBytes: 200_000, forMs: 1_000 } });
    const blobA = await imageA.openBlob({ digest: layer.digest, size: layer.compressed.length, signal: neverAborted() });
    const blobB = await imageB.openBlob({ digest: layer.digest, size: layer.compressed.length, signal: neverAborted() });
    const readingA = readStream(blobA.stream);
    const readingB = readStream(blobB.stream);
    readingA.catch(() => undefined);
    await waitFor('both blobs to stall', () => proxy.requests.slice(start).filter((r) => match.blobGet(layer.digest)(r) && r.bodyBytes > 0).length === 2);

    await closeTestContext(ctxA);
    await rejection(readingA, CancelledError);
    const ofA = proxy.requests.slice(start).filter(from('ctx-a'));
    await waitFor('every connection of A to close', () => ofA.every((r) => r.connectionClosedAt !== undefined), 2_000);
    await rejection(imageA.openBlob({ digest: layer.digest, size: -1, signal: neverAborted() }), CancelledError);
    assert.equal(proxy.requests.slice(start).filter(from('ctx-a')).length, ofA.length, 'no request from A after its pool closed');

    assert.ok((await readingB).equals(layer.compressed), 'B read the whole blob');
    const ofB = proxy.requests.slice(start).filter(from('ctx-b'));
    assert.equal(ofB.filter((r) => match.blobGet(layer.digest)(r)).length, 1, 'B was not even interrupted (no resume)');
    assert.ok((await readBlob(imageB, layer.digest)).bytes.equals(layer.compressed), 'and B\'s pool goes on serving');
  });
});

describe('two identities at once against one token-auth registry', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  const contexts = new TestContexts();

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ auth: 'token' });
    image = await pushImage(registry, 'who/img:v1', { layers: [randomLayer(10_000)] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  afterEach(() => contexts.closeAll());

  it('the anonymous context is refused while the one with credentials pulls, and never gets its token', async () => {
    const withCreds = contexts.with({ tlsVerify: false, ...FAST, retryAttempts: 2, credentials: { username: 'tester', password: 'pa55-w0rd' } }, { userAgentPrefix: 'ctx-user' });
    const anonymous = contexts.with({ tlsVerify: false, ...FAST, retryAttempts: 2 }, { userAgentPrefix: 'ctx-anon' });
    const start = proxy.requests.length;
    const tokensBefore = registry.tokenServer!.requests.length;
    const ref = `docker://${proxy.host}/who/img:v1`;
    const results = await Promise.allSettled([openImage(ref, withCreds), openImage(ref, anonymous), openImage(ref, withCreds), openImage(ref, anonymous)]);

    for (const r of [results[0], results[2]]) {
      assert.equal(r!.status, 'fulfilled', r!.status === 'rejected' ? String(r!.reason) : '');
      if (r!.status === 'fulfilled') assert.equal(r!.value.manifestDigest, image.manifestDigest);
    }
    for (const r of [results[1], results[3]]) {
      assert.equal(r!.status, 'rejected');
      if (r!.status === 'rejected') assert.ok(r!.reason instanceof AccessDeniedError, String(r!.reason));
    }
    const tokens = registry.tokenServer!.requests.slice(tokensBefore);
    assert.ok(tokens.some((t) => t.user === 'tester'), 'the user asked for a token');
    assert.ok(tokens.some((t) => t.user === undefined), 'so did the anonymous one, for itself');

    const seen = proxy.requests.slice(start);
    const authorizations = (prefix: string) => new Set(seen.filter(from(prefix)).map((r) => r.headers.authorization).filter((a): a is string => typeof a === 'string'));
    const userAuth = authorizations('ctx-user');
    assert.ok(userAuth.size > 0);
    assert.deepEqual([...authorizations('ctx-anon')].filter((a) => userAuth.has(a)), [], 'no header of the user in anonymous requests');
  });
});
