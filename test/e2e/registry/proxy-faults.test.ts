/**
 * docker:// under network faults: layerpipe reads a registry through the fault proxy, which
 * cuts, stalls, rate-limits, fails and corrupts blob downloads. Resumption must use Range
 * requests and still deliver verified bytes; transient faults past the retry budget must come
 * back as error_code "retryable"; wrong bytes as a digest error at FinishPipe.
 */
import { strict as assert } from 'node:assert';
import { after, before, beforeEach, describe, it } from 'node:test';
import { readAll } from '../../../clients/typescript';
import { match, startFaultProxy, type FaultProxy, type SeenRequest } from '../../harness/fault-proxy';
import { makeLayer, randomLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { pushImage, type PushedSingleImage } from '../../harness/registry-images';
import { fetchBlob, proxyErrorOf, sha256Hex, withProxy, type SpawnOptions } from '../../harness/registry-proxy-client';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();
const MiB = 1024 * 1024;
const RETRY_ATTEMPTS = 3;

/** Short delays and a short stall timeout keep the suite quick; the budget is 3 tries. */
const LAYERPIPE: SpawnOptions = {
  args: ['--tls-verify=false'],
  env: { LAYERPIPE_RETRY_ATTEMPTS: String(RETRY_ATTEMPTS), LAYERPIPE_RETRY_DELAY_MS: '50', LAYERPIPE_STALL_TIMEOUT_MS: '500' },
};

const RANGE_FROM = /^bytes=(\d+)-$/;

function rangeStart(r: SeenRequest): number | undefined {
  const m = r.range === undefined ? null : RANGE_FROM.exec(r.range);
  return m === null ? undefined : Number(m[1]);
}

describe('docker:// end to end: faults between layerpipe and the registry', { skip }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let image: PushedSingleImage;
  let ref: string;
  let big: { digest: string; size: number; bytes: Buffer };

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    image = await pushImage(registry, 'e2e/faults:v1', { layers: [randomLayer(4 * MiB), makeLayer({ small: 'file' })] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    ref = `docker://${proxy.host}/e2e/faults:v1`;
    const layer = image.spec.layers[0];
    big = { digest: layer.digest, size: layer.compressed.length, bytes: layer.compressed };
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => proxy.clearRules());

  /** Requests for the big layer from index `from` on. */
  const bigGets = (from: number): SeenRequest[] => proxy.requests.slice(from).filter(match.blobGet(big.digest));

  it('a connection cut mid-blob is resumed with a Range request; the stream verifies', async () => {
    const from = proxy.requests.length;
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 1 * MiB } });
    const data = await withProxy(LAYERPIPE, async (client) => {
      const id = await client.openImage(ref);
      return fetchBlob(client, id, big.digest, big.size);
    });
    assert.equal(data.length, big.size);
    assert.equal(sha256Hex(data), big.digest);
    const gets = bigGets(from);
    assert.equal(gets[0].fault, 'cut');
    const resumed = gets.slice(1).filter((r) => rangeStart(r) !== undefined);
    assert.ok(resumed.length >= 1, `no Range request after the cut: ${JSON.stringify(gets.map((r) => r.range))}`);
    const start = rangeStart(resumed[0])!;
    assert.ok(start > 0 && start <= 1 * MiB, `resumed from byte ${start}`);
    assert.equal(resumed[resumed.length - 1].completed, true);
  });

  it('two cuts in a row: each resume starts further on', async () => {
    const from = proxy.requests.length;
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 768 * 1024 }, times: 2 });
    const data = await withProxy(LAYERPIPE, async (client) => fetchBlob(client, await client.openImage(ref), big.digest, big.size));
    assert.equal(sha256Hex(data), big.digest);
    const starts = bigGets(from).map(rangeStart).filter((s): s is number => s !== undefined);
    assert.ok(starts.length >= 2, `range starts: ${JSON.stringify(starts)}`);
    assert.ok(starts[1] > starts[0], `range starts: ${JSON.stringify(starts)}`);
  });

  it('GetRawBlob after a cut: resumed too, the bytes hash right and the error pipe is empty', async () => {
    const from = proxy.requests.length;
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 2 * MiB } });
    await withProxy(LAYERPIPE, async (client) => {
      const transfer = await client.getRawBlob(await client.openImage(ref), big.digest);
      const [data, error] = await Promise.all([readAll(transfer.stream), transfer.error]);
      assert.equal(error, null);
      assert.equal(sha256Hex(data), big.digest);
    });
    assert.ok(bigGets(from).some((r) => rangeStart(r) !== undefined));
  });

  it('a body that stalls is abandoned after the stall timeout and resumed', async () => {
    const from = proxy.requests.length;
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'stall', afterBytes: 1 * MiB } });
    const started = Date.now();
    const data = await withProxy(LAYERPIPE, async (client) => fetchBlob(client, await client.openImage(ref), big.digest, big.size));
    assert.equal(sha256Hex(data), big.digest);
    assert.ok(Date.now() - started < 15_000);
    const gets = bigGets(from);
    assert.equal(gets[0].fault, 'stall');
    assert.ok(gets.slice(1).some((r) => rangeStart(r) !== undefined && r.completed), `requests: ${JSON.stringify(gets.map((r) => [r.range, r.completed]))}`);
  });

  it('429 with Retry-After: 1 is waited out, then the blob arrives', async () => {
    const from = proxy.requests.length;
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'status', status: 429, headers: { 'Retry-After': '1' } } });
    const data = await withProxy(LAYERPIPE, async (client) => fetchBlob(client, await client.openImage(ref), big.digest, big.size));
    assert.equal(sha256Hex(data), big.digest);
    const gets = bigGets(from);
    assert.equal(gets.length, 2);
    assert.equal(gets[0].status, 429);
    assert.ok(gets[1].at - gets[0].at >= 900, `retried after ${gets[1].at - gets[0].at} ms`);
  });

  it('503s beyond the retry budget: the blob fails with error_code "retryable"', async () => {
    const from = proxy.requests.length;
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'status', status: 503 }, times: Infinity });
    const err = await withProxy(LAYERPIPE, async (client) => proxyErrorOf(fetchBlob(client, await client.openImage(ref), big.digest, big.size)));
    assert.equal(err.errorCode, 'retryable', err.message);
    const tries = bigGets(from).length;
    assert.ok(tries >= RETRY_ATTEMPTS && tries <= 2 * RETRY_ATTEMPTS, `${tries} tries for a budget of ${RETRY_ATTEMPTS}`);
  });

  it('503s on the manifest: OpenImage fails with error_code "retryable"', async () => {
    proxy.addRule({ match: match.manifest(), action: { kind: 'status', status: 503 }, times: Infinity });
    const err = await withProxy(LAYERPIPE, async (client) => proxyErrorOf(client.openImage(ref)));
    assert.equal(err.errorCode, 'retryable', err.message);
  });

  it('503 a few times within the budget is retried to success', async () => {
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'status', status: 503 }, times: RETRY_ATTEMPTS - 1 });
    const data = await withProxy(LAYERPIPE, async (client) => fetchBlob(client, await client.openImage(ref), big.digest, big.size));
    assert.equal(sha256Hex(data), big.digest);
  });

  it('wrong bytes: FinishPipe reports the digest mismatch (error_code "other"), as skopeo does', async () => {
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'corrupt', offset: 3 * MiB }, times: Infinity });
    for (const opts of [LAYERPIPE, { program: 'skopeo', args: ['--tls-verify=false'] } as const]) {
      const err = await withProxy(opts, async (client) => {
        const id = await client.openImage(ref);
        return proxyErrorOf(fetchBlob(client, id, big.digest, big.size));
      });
      assert.equal(err.method, 'FinishPipe');
      assert.match(err.message, /corrupted blob|digest/i);
      // skopeo 1.9.3 (wire 0.2.3) sends no error_code at all.
      assert.equal(err.errorCode, opts === LAYERPIPE ? 'other' : '');
    }
  });

  it('for comparison, skopeo 1.9.3 fails the blob at the first cut (no resume)', async () => {
    const from = proxy.requests.length;
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 1 * MiB } });
    const err = await withProxy({ program: 'skopeo', args: ['--tls-verify=false'] }, async (client) =>
      proxyErrorOf(fetchBlob(client, await client.openImage(ref), big.digest, big.size)),
    );
    assert.match(err.message, /EOF|reset|closed/i);
    assert.ok(bigGets(from).every((r) => r.range === undefined));
  });
});
