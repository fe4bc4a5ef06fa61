/**
 * End-to-end tests of the TypeScript client against a real image proxy. The proxy is a
 * parameter: skopeo (the reference, wire 0.2.3 here) or layerpipe, so the same assertions
 * check the client and the server's conformance. Methods newer than the proxy's version are
 * checked to be refused (by the client, and by the proxy as unknown).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  defaultProxyCommand, ImageProxy, METHODS, ProxyClosedError, ProxyError, ProxyProtocolError, ProxyVersionError, readAll, pipeReadable, type CallResult, type ImageProxyOptions,
} from '../../clients/typescript';
import { compareVersions } from '../../protocol/methods';
import { makeLayer, MT, randomLayer, sha256, writeDirImage, writeOciImage, type BuiltLayer, type WrittenManifest } from './oci-builder';

/** The proxies under test: $LAYERPIPE_TEST_PROXY alone, else skopeo and this package's bin/layerpipe. */
export function proxyCommandsFromEnv(): string[] {
  const fromEnv = process.env.LAYERPIPE_TEST_PROXY;
  return fromEnv !== undefined && fromEnv !== '' ? [fromEnv] : ['skopeo', defaultProxyCommand()];
}

/** Why `command` cannot be run here, or null when it can. */
export function proxyUnavailable(command: string): string | null {
  const probe = spawnSync(command, ['--help'], { stdio: 'ignore', timeout: 20_000 });
  return probe.error === undefined ? null : `${command}: ${probe.error.message}`;
}

function isProxyError(err: unknown): err is ProxyError {
  return err instanceof ProxyError;
}

interface Fixture {
  dir: string;
  ociRef: string;
  small: BuiltLayer;
  large: BuiltLayer;
  oci: WrittenManifest;
  dirRef: string;
  docker: WrittenManifest;
}

/** Defines the suite for one proxy program. `args` go after experimental-image-proxy. */
export function defineClientSuite(command: string, args: readonly string[] = []): void {
  const unavailable = proxyUnavailable(command);
  const title = `TypeScript client against ${path.basename(command)}`;
  if (unavailable !== null) {
    const hint = `${unavailable} (install it, or set LAYERPIPE_TEST_PROXY to a proxy program)`;
    if (process.env.CI === 'true') {
      it(title, () => assert.fail(hint));
    } else {
      it(title, { skip: hint }, () => {});
    }
    return;
  }

  const fx = {} as Fixture;
  const opts = (extra: ImageProxyOptions = {}): ImageProxyOptions => ({ command, args, ...extra });
  /** Runs `body` with an initialized proxy, then shuts it down and expects status 0. */
  async function withProxy(body: (proxy: ImageProxy) => Promise<void>, extra: ImageProxyOptions = {}): Promise<void> {
    const proxy = await ImageProxy.spawn(opts(extra));
    try {
      await proxy.initialize();
      await body(proxy);
    } catch (err) {
      await proxy.close();
      if (err instanceof Error && proxy.stderr !== '') err.message += `\n--- proxy stderr ---\n${proxy.stderr}`;
      throw err;
    }
    assert.equal(await proxy.shutdown(), 0, proxy.stderr);
  }
  /** Reads a single-pipe reply while FinishPipe runs: the raw bytes. */
  async function readPiped(proxy: ImageProxy, reply: CallResult<unknown>): Promise<Buffer> {
    const [data] = await Promise.all([readAll(pipeReadable(reply.fds[0])), proxy.finishPipe(reply.pipeid)]);
    return data;
  }
  const expectProxyError = (proxy: ImageProxy, pattern?: RegExp) => (err: unknown) => {
    assert.ok(isProxyError(err), `expected a ProxyError, got ${String(err)}`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    if (proxy.version === null) return true; // before Initialize the version is unknown
    if (proxy.supports(METHODS.GetRawBlob)) assert.notEqual(err.errorCode, '', 'error_code is set from 0.2.8 on');
    else assert.equal(err.errorCode, '', 'error_code came with 0.2.8');
    return true;
  };

  describe(title, () => {
    before(() => {
      fx.dir = mkdtempSync(path.join(tmpdir(), 'layerpipe-client-'));
      fx.small = makeLayer({ 'etc/hello.txt': 'hello\n' });
      fx.large = randomLayer(3 * 1024 * 1024); // well over a pipe buffer (512 KiB): reading must run alongside FinishPipe, and a reader that stops early is seen
      fx.ociRef = `oci:${path.join(fx.dir, 'oci')}:latest`;
      fx.oci = writeOciImage(path.join(fx.dir, 'oci'), { layers: [fx.small, fx.large] });
      fx.dirRef = `dir:${path.join(fx.dir, 'docker')}`;
      fx.docker = writeDirImage(path.join(fx.dir, 'docker'), { layers: [fx.small] });
    });
    after(() => rmSync(fx.dir, { recursive: true, force: true }));

    it('initializes with a supported 0.2.x version, once', async () => {
      const proxy = await ImageProxy.spawn(opts());
      await assert.rejects(proxy.openImage(fx.ociRef), ProxyVersionError, 'the client wants initialize() first');
      await assert.rejects(proxy.call(METHODS.OpenImage, [fx.ociRef]), expectProxyError(proxy), 'the proxy wants Initialize first');
      const version = await proxy.initialize();
      assert.match(version, /^0\.2\.\d+$/);
      assert.ok(compareVersions(version, '0.2.3') >= 0);
      assert.equal(proxy.version, version);
      assert.ok(proxy.supports(METHODS.GetFullConfig));
      await assert.rejects(proxy.call(METHODS.Initialize, []), expectProxyError(proxy));
      assert.equal(await proxy.shutdown(), 0, proxy.stderr);
      assert.equal(proxy.exitCode, 0);
    });

    it('reads the manifest and configs of an OCI image', () => withProxy(async (proxy) => {
      const id = await proxy.openImage(fx.ociRef);
      assert.ok(id > 0);
      const manifest = await proxy.getManifest(id);
      assert.equal(manifest.digest, fx.oci.digest);
      assert.ok(manifest.bytes.equals(fx.oci.bytes), 'OCI manifests come back as stored');
      const written = JSON.parse(fx.oci.config.toString()) as Record<string, unknown>;
      const full = await proxy.getFullConfig(id);
      for (const key of ['architecture', 'os', 'rootfs', 'config', 'history']) assert.deepEqual(full[key], written[key], key);
      assert.equal(Date.parse(String(full.created)), Date.parse(String(written.created)));
      assert.deepEqual(await proxy.getConfig(id), full.config);
      await proxy.closeImage(id);
      await assert.rejects(proxy.getManifest(id), expectProxyError(proxy), 'a closed image id is refused');
      await assert.rejects(proxy.closeImage(id), expectProxyError(proxy));
    }));

    it('converts a Docker schema 2 image to OCI, its config descriptor naming GetFullConfig bytes', () => withProxy(async (proxy) => {
      const id = await proxy.openImage(fx.dirRef);
      const manifest = await proxy.getManifest(id);
      assert.equal(manifest.digest, fx.docker.digest, 'the digest is the stored manifest\'s');
      const oci = JSON.parse(manifest.bytes.toString()) as { mediaType?: string; config: { mediaType: string; digest: string; size: number }; layers: Array<{ mediaType: string; digest: string }> };
      assert.equal(oci.config.mediaType, MT.ociConfig);
      assert.deepEqual(oci.layers.map((l) => [l.mediaType, l.digest]), [[MT.ociLayerGzip, fx.small.digest]]);
      const configBytes = await readPiped(proxy, await proxy.call(METHODS.GetFullConfig, [id]));
      assert.equal(oci.config.digest, sha256(configBytes));
      assert.equal(oci.config.size, configBytes.length);
      const parsed = JSON.parse(configBytes.toString()) as Record<string, unknown>;
      assert.deepEqual(parsed.rootfs, { type: 'layers', diff_ids: [fx.small.diffId] });
    }));

    it('streams blobs through pipes, two transfers at once, verified by FinishPipe', () => withProxy(async (proxy) => {
      const id = await proxy.openImage(fx.ociRef);
      const transfers = await Promise.all([fx.large, fx.small].map((l) => proxy.getBlob(id, l.digest, l.compressed.length)));
      assert.deepEqual(transfers.map((t) => t.size), [fx.large.compressed.length, fx.small.compressed.length]);
      const [large, small] = await Promise.all(transfers.map(async (t) => (await Promise.all([readAll(t.stream), t.finish()]))[0]));
      assert.equal(sha256(large), fx.large.digest);
      assert.equal(sha256(small), fx.small.digest);
      assert.equal(transfers[0].finish(), transfers[0].finish(), 'finish() sends FinishPipe once');
    }));

    it('fails FinishPipe on a size mismatch and on a reader that stopped early', () => withProxy(async (proxy) => {
      const id = await proxy.openImage(fx.ociRef);
      const wrongSize = await proxy.getBlob(id, fx.small.digest, fx.small.compressed.length + 1);
      const [, sizeResult] = await Promise.allSettled([readAll(wrongSize.stream), wrongSize.finish()]);
      assert.equal(sizeResult.status, 'rejected');
      expectProxyError(proxy)((sizeResult as PromiseRejectedResult).reason);

      const early = await proxy.getBlob(id, fx.large.digest, fx.large.compressed.length);
      const finished = early.finish();
      await new Promise<void>((resolve) => early.stream.once('data', () => resolve()));
      early.stream.destroy();
      await assert.rejects(finished, (err: unknown) => {
        expectProxyError(proxy, /broken pipe$/)(err);
        if (proxy.supports(METHODS.GetRawBlob)) assert.equal((err as ProxyError).errorCode, 'EPIPE');
        return true;
      });
      assert.equal(await proxy.openImage(fx.ociRef) > 0, true, 'the proxy keeps serving');
    }));

    it('refuses missing images and blobs, bad digests and unknown pipe ids', () => withProxy(async (proxy) => {
      await assert.rejects(proxy.openImage(`oci:${path.join(fx.dir, 'oci')}:nothere`), (err: unknown) => {
        expectProxyError(proxy)(err);
        assert.equal((err as ProxyError).retryable, false);
        return true;
      });
      const id = await proxy.openImage(fx.ociRef);
      await assert.rejects(proxy.getBlob(id, `sha256:${'0'.repeat(64)}`, 1), expectProxyError(proxy));
      await assert.rejects(proxy.getBlob(id, 'not-a-digest', 1), expectProxyError(proxy));
      await assert.rejects(proxy.finishPipe(4242), expectProxyError(proxy));
      await assert.rejects(proxy.getManifest(9999), expectProxyError(proxy));
    }));

    it('answers several calls in flight in request order', () => withProxy(async (proxy) => {
      const id = await proxy.openImage(fx.ociRef);
      const results = await Promise.allSettled([
        proxy.getManifest(id),
        proxy.openImage(`oci:${path.join(fx.dir, 'oci')}:nothere`),
        proxy.getConfig(id),
        proxy.openImage(fx.dirRef),
        proxy.getFullConfig(id),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
      const [manifest, , config, second, full] = results.map((r) => (r.status === 'fulfilled' ? r.value : null));
      assert.equal((manifest as { digest: string }).digest, fx.oci.digest);
      assert.deepEqual(config, (full as { config: unknown }).config);
      assert.ok(typeof second === 'number' && second !== id);
    }));

    it('answers malformed, unknown, oversized and mistyped requests with errors and keeps serving', () => withProxy(async (proxy) => {
      const raw = async (text: string) => {
        const reply = await proxy.sendRaw(Buffer.from(text));
        assert.deepEqual(reply.fds, []);
        const json = reply.json as Record<string, unknown>;
        assert.equal(json.success, false, `${text.slice(0, 60)} -> ${reply.data.toString().slice(0, 200)}`);
        assert.equal(json.pipeid, 0);
        assert.equal(typeof json.error, 'string');
        return json.error as string;
      };
      await raw('{"method":');
      await raw('[1, 2]');
      assert.match(await raw('{"method":"NoSuchMethod","args":[]}'), /unknown method: NoSuchMethod/);
      await raw(JSON.stringify({ method: 'OpenImage', args: [`oci:${'x'.repeat(40 * 1024)}`] }));
      await raw('{"method":"OpenImage","args":[]}');
      await raw('{"method":"OpenImage","args":["a","b"]}');
      const id = await proxy.openImage(fx.ociRef);
      const blob = (args: unknown[]) => raw(JSON.stringify({ method: 'GetBlob', args }));
      assert.match(await blob([id, fx.small.digest]), /expecting \(imgid, digest, size\)/);
      await blob([String(id), fx.small.digest, 1]);
      await blob([id, 5, 1]);
      await blob([id, fx.small.digest, '100']);
      await blob([id, fx.small.digest, 2 ** 60]);
      await raw(JSON.stringify({ method: 'CloseImage', args: [String(id)] }));
      assert.equal((await proxy.getManifest(id)).digest, fx.oci.digest, 'the image is still open');
      // More than a socket buffer: refused by the kernel, so no reply is awaited for it.
      await assert.rejects(proxy.sendRaw(Buffer.alloc(4 * 1024 * 1024, 0x20)), ProxyProtocolError);
      assert.ok(await proxy.openImage(fx.ociRef) > 0);
    }));

    it('gates methods on the protocol version, as the proxy does', () => withProxy(async (proxy) => {
      const id = await proxy.openImage(fx.ociRef);
      const unknownToProxy = async (method: string, args: unknown[]) => {
        const reply = await proxy.sendRaw(Buffer.from(JSON.stringify({ method, args })));
        assert.match(String((reply.json as { error?: unknown }).error), new RegExp(`unknown method: ${method}`));
      };
      if (proxy.supports(METHODS.OpenImageOptional)) {
        assert.equal(await proxy.openImageOptional(`oci:${path.join(fx.dir, 'oci')}:nothere`), null);
        assert.ok(((await proxy.openImageOptional(fx.ociRef)) ?? 0) > 0);
      } else {
        await assert.rejects(proxy.openImageOptional(fx.ociRef), ProxyVersionError);
        await unknownToProxy('OpenImageOptional', [fx.ociRef]);
      }
      const expectedLayers = [fx.small, fx.large].map((l) => ({ digest: l.digest, size: l.compressed.length, media_type: MT.ociLayerGzip }));
      if (proxy.supports(METHODS.GetLayerInfo)) {
        assert.deepEqual(await proxy.getLayerInfo(id), expectedLayers);
        assert.deepEqual((await proxy.call(METHODS.GetLayerInfo, [id])).value, expectedLayers);
      } else {
        await assert.rejects(proxy.getLayerInfo(id), ProxyVersionError);
        await unknownToProxy('GetLayerInfo', [id]);
      }
      if (!proxy.supports(METHODS.GetLayerInfoPiped)) await unknownToProxy('GetLayerInfoPiped', [id]);
      if (proxy.supports(METHODS.GetRawBlob)) {
        const raw = await proxy.getRawBlob(id, fx.large.digest);
        const [data, error] = await Promise.all([readAll(raw.stream), raw.error]);
        assert.equal(raw.size, fx.large.compressed.length);
        assert.equal(sha256(data), fx.large.digest);
        assert.equal(error, null);
      } else {
        await assert.rejects(proxy.getRawBlob(id, fx.large.digest), ProxyVersionError);
        await unknownToProxy('GetRawBlob', [id, fx.large.digest]);
      }
    }));

    it('refuses a reply longer than its buffer', async () => {
      const proxy = await ImageProxy.spawn(opts({ maxReplySize: 24 }));
      await assert.rejects(proxy.initialize(), (err: unknown) => {
        assert.ok(err instanceof ProxyProtocolError, String(err));
        assert.match(err.message, /longer than 24 bytes/);
        return true;
      });
      assert.equal(proxy.version, null);
      assert.equal(await proxy.shutdown(), 0, proxy.stderr);
    });

    it('talks over another fd with --sockfd', () => withProxy(async (proxy) => {
      assert.ok(proxy.args.includes('--sockfd'));
      const id = await proxy.openImage(fx.ociRef);
      assert.equal((await proxy.getManifest(id)).digest, fx.oci.digest);
    }, { sockfd: 5 }));

    it('exits 0 on Shutdown and when the client just closes the socket', async () => {
      const shut = await ImageProxy.spawn(opts());
      await shut.initialize();
      const inFlight = shut.openImage(fx.ociRef);
      assert.equal(await shut.shutdown(), 0, shut.stderr);
      assert.ok(await inFlight > 0, 'shutdown() waits for calls in flight');
      await assert.rejects(shut.openImage(fx.ociRef), ProxyClosedError);

      const closed = await ImageProxy.spawn(opts());
      await closed.initialize();
      assert.equal(await closed.close(), 0, closed.stderr);
      assert.equal(closed.exitCode, 0);
    });

    it('fails pending calls with the exit status and stderr of a proxy that died', async () => {
      const proxy = await ImageProxy.spawn({ command, args: ['--no-such-flag-for-layerpipe-tests'] });
      await assert.rejects(proxy.initialize(), (err: unknown) => {
        assert.ok(err instanceof ProxyClosedError, String(err));
        assert.match(err.message, /exited with status [1-9]/);
        assert.match(err.message, /no-such-flag-for-layerpipe-tests/, 'stderr is in the message');
        return true;
      });
      assert.notEqual(await proxy.waitExit(), 0);
      await assert.rejects(ImageProxy.spawn({ command: path.join(fx.dir, 'no-such-program') }), (err: unknown) => {
        assert.ok(err instanceof ProxyClosedError);
        assert.match(err.message, /ENOENT/);
        return true;
      });
    });

    it('leaves no fds open behind it', async () => {
      /** Open fds and what they are; the fd of the listing itself is gone by readlink time. */
      const openFds = () => new Map(readdirSync('/proc/self/fd').flatMap((fd) => {
        try {
          return [[fd, readlinkSync(`/proc/self/fd/${fd}`)] as const];
        } catch {
          return [];
        }
      }));
      const before = openFds();
      await withProxy(async (proxy) => {
        const id = await proxy.openImage(fx.ociRef);
        await proxy.getManifest(id);
        const t = await proxy.getBlob(id, fx.small.digest, fx.small.compressed.length);
        await Promise.all([readAll(t.stream), t.finish()]);
        const early = await proxy.getBlob(id, fx.large.digest, fx.large.compressed.length);
        early.stream.destroy();
        await assert.rejects(early.finish(), ProxyError);
        await assert.rejects(proxy.getBlob(id, 'bad', 1), ProxyError);
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const leaked = [...openFds()].filter(([fd, target]) => before.get(fd) !== target);
      assert.deepEqual(leaked, []);
    });
  });
}
