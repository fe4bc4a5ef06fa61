/**
 * Protocol 1.0's methods through a real Session against Debian's docker-registry (htpasswd
 * auth, plain HTTP), some requests through the fault proxy: GetRawBlob byte ranges as Range
 * requests (206, a 200 from a registry that ignores Range, a cut resumed mid-range, 416),
 * ListTags with pagination over more tags than a page and against `skopeo list-tags`, and
 * GetManifest/ListInstances on a multi-arch list and a Docker schema 2 image.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { AccessDeniedError, CancelledError, ImageNotFoundError, InvalidArgumentError, PlatformNotFoundError, UnsupportedError } from '../../../protocol/errors';
import { sha256Digest } from '../../../server/image/digest';
import type { SystemContext } from '../../../server/image/types';
import type { Session } from '../../../server/service/session';
import { MAX_TAGS, TAG_PAGE_SIZE } from '../../../server/transports/docker/tags';
import { TestContexts } from '../../harness/docker-source';
import { match, startFaultProxy, type FaultProxy } from '../../harness/fault-proxy';
import { makeLayer, MT, randomLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { basicAuthHeader, httpGet } from '../../harness/registry-http';
import { pushImage, pushMultiArch, rawManifest, skopeo, skopeoRegistryFlags, type PushedMultiArch, type PushedSingleImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';
import { call1, decoded, deliver, session1 } from '../../harness/session-1';

const skip = registrySuiteSkip();
const TAGS = TAG_PAGE_SIZE + 150;

describe('protocol 1.0 methods on a registry', { skip, timeout: 600_000 }, () => {
  const contexts = new TestContexts();
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  let single: PushedSingleImage;
  let docker: PushedSingleImage;
  let multi: PushedMultiArch;
  let session: Session;
  let ctx: SystemContext;
  const big = randomLayer(2 * 1024 * 1024);
  const tagNames = Array.from({ length: TAGS }, (_, i) => `t-${String(i).padStart(5, '0')}`);

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry({ auth: 'htpasswd' });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    single = await pushImage(registry, 'proj/app:v1', { layers: [makeLayer({ 'a.txt': 'a\n' }), big] });
    docker = await pushImage(registry, 'proj/docker:v1', { layers: [makeLayer({ 'd.txt': 'd\n' })] }, { format: 'v2s2' });
    multi = await pushMultiArch(registry, 'proj/multi:v1', [
      { platform: { os: 'linux', architecture: 'amd64' }, spec: { layers: [makeLayer({ 'x.txt': 'amd64\n' })] } },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, spec: { layers: [makeLayer({ 'x.txt': 'arm64\n' })] } },
    ]);
    // Tags are the manifest PUT under more names (its blobs are in the repository): cheap, so a listing needs more than one page.
    const auth = basicAuthHeader(registry.creds!);
    const queue = [...tagNames];
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let tag = queue.shift(); tag !== undefined; tag = queue.shift()) {
        const res = await httpGet(`${registry.url}/v2/proj/app/manifests/${tag}`, {
          method: 'PUT', body: single.manifest.toString('utf8'), headers: { authorization: auth, 'content-type': single.mediaType },
        });
        if (res.status !== 201) throw new Error(`PUT tag ${tag}: ${res.status} ${res.body.toString()}`);
      }
    }));
    const [username, password] = registry.creds!.split(':') as [string, string];
    ctx = contexts.with({ tlsVerify: false, credentials: { username, password }, retryDelayMs: 20, retryAttempts: 3 });
    session = session1(ctx);
  });
  after(async () => {
    await session?.close();
    await contexts.closeAll();
    await proxy?.close();
    await registry?.stop();
  });

  const viaProxy = (repoAndTag: string) => `docker://${proxy.host}/${repoAndTag}`;
  const open = async (reference: string): Promise<number> => (await call1(session, 'OpenImage', { reference })).image;
  const rawRange = async (id: number, offset?: number, length?: number) => {
    const t = await call1(session, 'GetRawBlob', { image: id, digest: big.digest, ...(offset !== undefined ? { offset } : {}), ...(length !== undefined ? { length } : {}) });
    const { bytes, error } = await deliver(session, t.pending);
    assert.equal(error, undefined);
    return { size: t.size, bytes };
  };
  const blobRequests = () => proxy.seen(match.blobGet(big.digest));

  it('GetRawBlob ranges are Range requests: exact slices, sizes, and the end of the blob', async () => {
    const id = await open(viaProxy('proj/app:v1'));
    const n = big.compressed.length;
    for (const [offset, length] of [[1000, 5000], [n - 10, undefined], [0, 1], [123_456, n], [5, 0]] as const) {
      const before = blobRequests().length;
      const got = await rawRange(id, offset, length);
      const want = big.compressed.subarray(offset, length === undefined ? n : Math.min(n, offset + length));
      assert.equal(got.size, want.length, `offset ${offset} length ${length}`);
      assert.ok(got.bytes.equals(want), `offset ${offset} length ${length}`);
      const sent = blobRequests().slice(before);
      assert.equal(sent.length, 1);
      assert.equal(sent[0]!.status, 206);
      assert.match(sent[0]!.range ?? '', new RegExp(`^bytes=${offset}-`));
    }
    assert.deepEqual(await rawRange(id, n), { size: 0, bytes: Buffer.alloc(0) }, 'an empty range at the very end');
    await assert.rejects(call1(session, 'GetRawBlob', { image: id, digest: big.digest, offset: n + 1 }), (err: unknown) =>
      err instanceof InvalidArgumentError && /offset \d+ is past the end of the blob/.test(err.message));
    // No range: one plain GET, verified by the whole digest.
    const whole = await rawRange(id);
    assert.equal(sha256Digest(whole.bytes), big.digest);
    assert.equal(blobRequests().at(-1)!.range, undefined);
    await call1(session, 'CloseImage', { image: id });
  });

  it('a 200 answer to a Range request is skipped to the offset and cut at the length', async () => {
    const id = await open(viaProxy('proj/app:v1'));
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'ignore-range' }, times: 2 });
    const got = await rawRange(id, 700_000, 300_000);
    assert.ok(got.bytes.equals(big.compressed.subarray(700_000, 1_000_000)));
    assert.equal(got.size, 300_000);
    const tail = await rawRange(id, big.compressed.length - 100);
    assert.ok(tail.bytes.equals(big.compressed.subarray(big.compressed.length - 100)));
    assert.deepEqual(blobRequests().slice(-2).map((r) => [r.fault, r.status]), [['ignore-range', 200], ['ignore-range', 200]]);
    await call1(session, 'CloseImage', { image: id });
  });

  it('a range cut mid-way is resumed from the first byte not delivered, within the same range', async () => {
    const id = await open(viaProxy('proj/app:v1'));
    proxy.addRule({ match: match.blobGet(big.digest), action: { kind: 'cut', afterBytes: 100_000 } });
    const before = blobRequests().length;
    const got = await rawRange(id, 50_000, 1_000_000);
    assert.ok(got.bytes.equals(big.compressed.subarray(50_000, 1_050_000)));
    const ranges = blobRequests().slice(before).map((r) => r.range);
    assert.deepEqual(ranges.slice(0, 2), ['bytes=50000-1049999', 'bytes=150000-1049999']);
    await call1(session, 'CloseImage', { image: id });
  });

  it('GetBlob without a size: the manifest\'s size, verified', async () => {
    const id = await open(single.ref);
    const t = await call1(session, 'GetBlob', { image: id, digest: big.digest });
    assert.equal(t.size, big.compressed.length);
    const { bytes, error } = await deliver(session, t.pending);
    assert.equal(error, undefined);
    assert.ok(bytes.equals(big.compressed));
    await call1(session, 'CloseImage', { image: id });
  });

  it('ListTags lists every tag of a repository with more tags than a page, as skopeo list-tags does', async () => {
    const before = proxy.seen(match.path(/\/tags\/list/)).length;
    const { tags } = await call1(session, 'ListTags', { reference: viaProxy('proj/app') });
    assert.deepEqual([...tags].sort(), [...tagNames, 'v1'].sort());
    const pages = proxy.seen(match.path(/\/tags\/list/)).slice(before).filter((r) => r.status === 200);
    // docker-registry 2.8 ignores `n` and answers every tag at once: one page, shorter than asked, ends the listing.
    assert.match(pages[0]!.path, new RegExp(`n=${TAG_PAGE_SIZE}`));
    const listed = JSON.parse((await skopeo(['list-tags', ...skopeoRegistryFlags(registry, ''), `docker://${registry.host}/proj/app`])).stdout) as { Tags: string[] };
    assert.deepEqual([...tags].sort(), [...listed.Tags].sort());
    assert.deepEqual((await call1(session, 'ListTags', { reference: `docker://${registry.host}/proj/multi` })).tags, ['v1']);
  });

  /** Answers tag-list requests whose path matches `re` with these tags (and headers), instead of the registry. */
  const scriptPage = (re: RegExp, tags: readonly string[], headers: Record<string, string> = {}, times = 1) => proxy.addRule({
    match: (r) => r.method === 'GET' && /\/tags\/list/.test(r.path) && re.test(r.path),
    action: { kind: 'status', status: 200, headers, body: JSON.stringify({ name: 'proj/app', tags }) },
    times,
  });
  const tagRequests = () => proxy.seen(match.path(/\/tags\/list/));

  it('ListTags follows Link headers, on the same registry whatever host the link names', async () => {
    const all = [...tagNames, 'v1'].sort();
    const last = all[TAG_PAGE_SIZE - 1]!;
    scriptPage(/n=1000$/, all.slice(0, TAG_PAGE_SIZE), { link: `<http://elsewhere.invalid/v2/proj/app/tags/list?n=${TAG_PAGE_SIZE}&last=${last}>; rel="next"` });
    scriptPage(new RegExp(`last=${last}`), all.slice(TAG_PAGE_SIZE));
    const before = tagRequests().length;
    const { tags } = await call1(session, 'ListTags', { reference: viaProxy('proj/app') });
    assert.deepEqual(tags, all);
    assert.deepEqual(tagRequests().slice(before).map((r) => r.path), [
      `/v2/proj/app/tags/list?n=${TAG_PAGE_SIZE}`, `/v2/proj/app/tags/list?n=${TAG_PAGE_SIZE}&last=${last}`,
    ]);
    assert.equal(proxy.pendingRules(), 0);
  });

  it('ListTags asks for the next page with `last` when a full page comes without a Link, and stops on a page with nothing new', async () => {
    const all = [...tagNames, 'v1'].sort();
    const last = all[TAG_PAGE_SIZE - 1]!;
    scriptPage(/n=1000$/, all.slice(0, TAG_PAGE_SIZE));
    // The real registry answers the `last` request with every tag again: only the new ones are added.
    const before = tagRequests().length;
    const { tags } = await call1(session, 'ListTags', { reference: viaProxy('proj/app') });
    assert.deepEqual(tags.slice(0, TAG_PAGE_SIZE), all.slice(0, TAG_PAGE_SIZE));
    assert.deepEqual([...tags].sort(), all);
    assert.equal(tagRequests().slice(before)[1]!.path, `/v2/proj/app/tags/list?n=${TAG_PAGE_SIZE}&last=${last}`);
    // A registry whose Link leads back to the same page forever: the repeat brings nothing new and ends the listing.
    scriptPage(/tags\/list/, ['a', 'b'], { link: '</v2/proj/app/tags/list?n=2&last=b>; rel="next"' }, 50);
    const loop = tagRequests().length;
    assert.deepEqual((await call1(session, 'ListTags', { reference: viaProxy('proj/app') })).tags, ['a', 'b']);
    assert.equal(tagRequests().length - loop, 2);
    proxy.clearRules();
  });

  it('ListTags refuses more than MAX_TAGS tags clearly, and a cancelled listing stops its request', async () => {
    scriptPage(/n=1000$/, Array.from({ length: MAX_TAGS + 1 }, (_, i) => `x${i}`));
    await assert.rejects(call1(session, 'ListTags', { reference: viaProxy('proj/app') }), (err: unknown) =>
      err instanceof UnsupportedError && new RegExp(`more than ${MAX_TAGS} tags`).test(err.message));
    const isList = (r: { method: string; path: string }) => r.method === 'GET' && /\/tags\/list/.test(r.path);
    proxy.addRule({ match: isList, action: { kind: 'stall', afterBytes: 0 } });
    const before = proxy.seen(isList).length;
    const controller = new AbortController();
    const pending = call1(session, 'ListTags', { reference: viaProxy('proj/app') }, controller.signal);
    while (proxy.seen(isList).length === before) await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort(new CancelledError('request cancelled'));
    await assert.rejects(pending, CancelledError);
    const stalled = proxy.seen(isList)[before]!;
    for (let i = 0; i < 100 && stalled.connectionClosedAt === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.notEqual(stalled.connectionClosedAt, undefined, 'the network request was stopped');
    proxy.clearRules();
  });

  it('ListTags errors: an unknown repository, no credentials, a tag in the reference', async () => {
    await assert.rejects(call1(session, 'ListTags', { reference: `docker://${registry.host}/proj/none` }), ImageNotFoundError);
    const anonymous = session1(contexts.with({ tlsVerify: false }));
    await assert.rejects(call1(anonymous, 'ListTags', { reference: `docker://${registry.host}/proj/app` }), AccessDeniedError);
    await anonymous.close();
    await assert.rejects(call1(session, 'ListTags', { reference: `docker://${registry.host}/proj/app:v1` }), InvalidArgumentError);
  });

  it('a multi-arch list: raw as skopeo inspect --raw, instances, a platform\'s instance, and a missing one', async () => {
    const id = await open(multi.ref);
    const raw = await call1(session, 'GetManifest', { image: id, raw: true });
    assert.deepEqual(decoded(raw.data), await rawManifest(registry, 'proj/multi:v1'));
    assert.equal(raw.digest, multi.manifestDigest);
    assert.equal(raw.mediaType, MT.ociIndex);
    const { instances } = await call1(session, 'ListInstances', { image: id });
    assert.deepEqual(instances.map((i) => [i.digest, i.platform]), multi.instances.map((i) => [i.digest, i.platform]));
    for (const instance of multi.instances) {
      const m = await call1(session, 'GetManifest', { image: id, platform: instance.platform });
      assert.equal(m.digest, instance.digest);
      assert.deepEqual(decoded(m.data), instance.manifest);
    }
    await assert.rejects(call1(session, 'GetManifest', { image: id, platform: { os: 'windows', architecture: 'amd64' } }), PlatformNotFoundError);
    await call1(session, 'CloseImage', { image: id });
  });

  it('cancelling a GetManifest whose instance is being fetched stops the fetch; the next one reads it', async () => {
    const id = await open(viaProxy('proj/multi:v1'));
    const arm = multi.instances.find((i) => i.platform.architecture === 'arm64')!;
    const isInstance = (r: { method: string; path: string }) => r.method === 'GET' && r.path.endsWith(`/manifests/${arm.digest}`);
    proxy.addRule({ match: isInstance, action: { kind: 'stall', afterBytes: 0 } });
    const controller = new AbortController();
    const pending = call1(session, 'GetManifest', { image: id, platform: arm.platform }, controller.signal);
    while (proxy.seen(isInstance).length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const started = Date.now();
    controller.abort(new CancelledError('request cancelled'));
    await assert.rejects(pending, CancelledError);
    assert.ok(Date.now() - started < 2000, 'the request ends at once');
    while (proxy.seen(isInstance)[0]!.connectionClosedAt === undefined && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.notEqual(proxy.seen(isInstance)[0]!.connectionClosedAt, undefined, 'the network request was stopped');
    assert.equal((await call1(session, 'GetManifest', { image: id, platform: arm.platform })).digest, arm.digest);
    await call1(session, 'CloseImage', { image: id });
  });

  it('a Docker schema 2 image: the default answer is 0.2.x\'s (stored digest, converted bytes); raw is as stored', async () => {
    const id = await open(docker.ref);
    const m = await call1(session, 'GetManifest', { image: id });
    const old = await session.call('GetManifest', [id]);
    assert.equal(m.digest, old.value);
    assert.equal(m.digest, docker.manifestDigest);
    assert.deepEqual(decoded(m.data), (await deliver(session, old.pending!)).bytes);
    assert.equal(m.mediaType, MT.ociManifest);
    const raw = await call1(session, 'GetManifest', { image: id, raw: true });
    assert.deepEqual(raw, { digest: docker.manifestDigest, mediaType: MT.dockerManifest, data: docker.manifest.toString('base64') });
    await call1(session, 'CloseImage', { image: id });
  });
});
