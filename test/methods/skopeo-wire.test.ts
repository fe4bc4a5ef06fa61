/**
 * The skopeo-compatible wire, end to end: the real bin/layerpipe on a real socketpair, driven
 * by the TypeScript client. Every method, every argument error, malformed input, hostile
 * references, verification failures, concurrency and process lifetime.
 */
import assert from 'node:assert/strict';

import { createHash } from 'node:crypto';
import {
  closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, pipeReadable, ProxyError, readAll } from '../../clients/typescript';
import { METHODS, MAX_MESSAGE_SIZE, PROTOCOL_VERSION } from '../../protocol/methods';
import { native } from '../../protocol/seqpacket/native';
import {
  makeLayer, randomLayer, sha256, writeDirImage, writeImageBlobs, writeIndexBlob, writeLayoutIndex, writeOciImage,
  type BuiltLayer, type WrittenManifest,
} from '../harness/oci-builder';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-wire-'));
const ociDir = path.join(tmp, 'oci');
const dirDir = path.join(tmp, 'dir');
const multiDir = path.join(tmp, 'multi');
const corruptDir = path.join(tmp, 'corrupt');
const escapeDir = path.join(tmp, 'escape');
const layers: BuiltLayer[] = [
  makeLayer({ 'hello.txt': 'hello\n' }),
  randomLayer(3 * 1024 * 1024, 'a.bin'),
  randomLayer(2 * 1024 * 1024 + 17, 'b.bin'),
  randomLayer(600 * 1024, 'c.bin'),
];
let oci: WrittenManifest;
let dir: WrittenManifest;
let amd64: WrittenManifest;
let arm64: WrittenManifest;
let corrupt: WrittenManifest;

before(() => {
  oci = writeOciImage(ociDir, { layers }, 'latest');
  dir = writeDirImage(dirDir, { layers: layers.slice(0, 2), extraConfig: { docker_version: '24.0', container_config: { Hostname: 'h' } } });
  amd64 = writeImageBlobs(multiDir, { layers: [layers[0]!], architecture: 'amd64' });
  arm64 = writeImageBlobs(multiDir, { layers: [layers[3]!], architecture: 'arm64', variant: 'v8' });
  const index = writeIndexBlob(multiDir, [
    { manifest: amd64, platform: { os: 'linux', architecture: 'amd64' } },
    { manifest: arm64, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  writeLayoutIndex(multiDir, [{ manifest: index, refName: 'multi' }, { manifest: amd64, refName: 'single' }]);
  corrupt = writeOciImage(corruptDir, { layers: [layers[1]!] }, 'latest');
  // Flip one byte of the layer on disk: same length, wrong content.
  const blob = path.join(corruptDir, 'blobs', 'sha256', layers[1]!.digest.slice(7));
  const bad = Buffer.from(layers[1]!.compressed);
  bad[1000] = bad[1000]! ^ 0xff;
  writeFileSync(blob, bad);
  // A layout whose layer blob is a symlink to a file outside it.
  writeOciImage(escapeDir, { layers: [layers[0]!] }, 'latest');
  const outside = path.join(tmp, 'outside-secret');
  writeFileSync(outside, 'secret');
  const escaping = path.join(escapeDir, 'blobs', 'sha256', layers[0]!.digest.slice(7));
  unlinkSync(escaping);
  symlinkSync(outside, escaping);
});

after(() => rmSync(tmp, { recursive: true, force: true }));

async function withProxy<T>(fn: (p: ImageProxy) => Promise<T>, args: string[] = []): Promise<T> {
  const proxy = await ImageProxy.spawn({ args });
  try {
    await proxy.initialize();
    return await fn(proxy);
  } finally {
    await proxy.close();
  }
}

async function readBlob(proxy: ImageProxy, id: number, digest: string, size: number): Promise<Buffer> {
  const t = await proxy.getBlob(id, digest, size);
  const [data] = await Promise.all([readAll(t.stream), t.finish()]);
  return data;
}

async function expectProxyError(p: Promise<unknown>, pattern: RegExp, code: string = 'other'): Promise<ProxyError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ProxyError, `expected ProxyError, got ${String(err)}`);
  assert.match(err.message, pattern);
  assert.equal(err.errorCode, code);
  return err;
}

describe('methods', () => {
  it('Initialize answers the protocol version, once', async () => {
    await withProxy(async (p) => {
      assert.equal(p.version, PROTOCOL_VERSION);
      await expectProxyError(p.call(METHODS.Initialize, []), /already initialized/);
    });
  });

  it('refuses every method before Initialize', async () => {
    const p = await ImageProxy.spawn();
    try {
      const reply = await p.sendRaw(Buffer.from(JSON.stringify({ method: 'OpenImage', args: [`oci:${ociDir}:latest`] })));
      assert.deepEqual(reply.json, { success: false, value: null, pipeid: 0, error_code: 'other', error: 'client error: must invoke Initialize' });
    } finally {
      await p.close();
    }
  });

  it('OpenImage, GetManifest, GetFullConfig, GetConfig, GetLayerInfo(Piped), CloseImage on oci:', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      assert.ok(id > 0);
      const m = await p.getManifest(id);
      assert.equal(m.digest, oci.digest);
      assert.deepEqual(m.bytes, oci.bytes, 'an OCI manifest is handed out as stored');
      const full = await p.getFullConfig(id);
      assert.equal(full.architecture, 'amd64');
      assert.deepEqual(full.rootfs?.diff_ids, layers.map((l) => l.diffId));
      const runtime = await p.getConfig(id);
      assert.deepEqual(runtime.Cmd, ['/bin/sh']);
      const expected = layers.map((l) => ({ digest: l.digest, size: l.compressed.length, media_type: 'application/vnd.oci.image.layer.v1.tar+gzip' }));
      assert.deepEqual((await p.call(METHODS.GetLayerInfo, [id])).value, expected);
      assert.deepEqual(await p.getLayerInfo(id), expected); // Piped
      await p.closeImage(id);
      await expectProxyError(p.getManifest(id), new RegExp(`no image ${id}`));
    });
  });

  it('a layout holding a single image needs no REF; a missing REF gives OpenImageOptional 0', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}`);
      assert.equal((await p.getManifest(id)).digest, oci.digest);
      assert.equal(await p.openImageOptional(`oci:${ociDir}:nosuchref`), null);
      await expectProxyError(p.openImage(`oci:${ociDir}:nosuchref`), /no descriptor found for reference "nosuchref"/);
      await expectProxyError(p.openImage(`oci:${multiDir}`), /more than one image/);
      const optional = await p.call(METHODS.OpenImageOptional, [`oci:${ociDir}:latest`]);
      assert.ok(optional.value > 0);
    });
  });

  it('converts a Docker schema 2 dir: image to OCI, naming GetFullConfig bytes as its config', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`dir:${dirDir}`);
      const m = await p.getManifest(id);
      assert.equal(m.digest, dir.digest, 'value is the digest of the stored Docker manifest');
      const manifest = JSON.parse(m.bytes.toString()) as { mediaType: string; config: { digest: string; size: number; mediaType: string }; layers: { mediaType: string }[] };
      assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
      assert.ok(manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip'));
      const full = await p.call(METHODS.GetFullConfig, [id]);
      const [configBytes] = await Promise.all([readAll(pipe(full.fds[0]!)), p.finishPipe(full.pipeid)]);
      assert.equal(sha256(configBytes), manifest.config.digest);
      assert.equal(configBytes.length, manifest.config.size);
      assert.ok(!configBytes.toString().includes('docker_version'), 'Docker-only fields are dropped');
      // The converted config is served under its new digest too (skopeo cannot).
      assert.deepEqual(await readBlob(p, id, manifest.config.digest, manifest.config.size), configBytes);
      // GetLayerInfo reports the original media types.
      assert.equal((await p.getLayerInfo(id))[0]!.media_type, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    });
  });

  it('picks the platform of a multi-arch index, or the --override-* one', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${multiDir}:multi`);
      assert.equal((await p.getManifest(id)).digest, amd64.digest);
    }, ['--override-arch', 'amd64']);
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${multiDir}:multi`);
      assert.equal((await p.getManifest(id)).digest, arm64.digest, 'value is the chosen instance digest');
      assert.equal((await p.getFullConfig(id)).architecture, 'arm64');
    }, ['--override-arch=arm64', '--override-variant', 'v8']);
    await withProxy(async (p) => {
      await expectProxyError(p.openImage(`oci:${multiDir}:multi`), /no image found in image index for architecture s390x/);
    }, ['--override-arch', 's390x']);
  });

  it('GetBlob streams verified bytes; FinishPipe with an unknown id is an error', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      const t = await p.getBlob(id, layers[1]!.digest, layers[1]!.compressed.length);
      assert.equal(t.size, layers[1]!.compressed.length);
      const [data] = await Promise.all([readAll(t.stream), t.finish()]);
      assert.equal(sha256(data), layers[1]!.digest);
      await expectProxyError(p.finishPipe(424242), /finishpipe: no active pipe 424242/);
    });
  });

  it('GetRawBlob passes data and an empty error pipe, with no FinishPipe', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      const r = await p.call(METHODS.GetRawBlob, [id, layers[2]!.digest]);
      assert.equal(r.pipeid, 0);
      assert.equal(r.fds.length, 2);
      assert.equal(r.value, layers[2]!.compressed.length);
      const [data, err] = await Promise.all([readAll(pipe(r.fds[0]!)), readAll(pipe(r.fds[1]!))]);
      assert.equal(sha256(data), layers[2]!.digest);
      assert.equal(err.length, 0);
    });
  });
});

const pipe = (fd: number) => pipeReadable(fd);

describe('bad input: clear errors, and the proxy keeps serving', () => {
  it('malformed JSON, wrong shapes, unknown methods, oversized packets', async () => {
    await withProxy(async (p) => {
      const cases: [string | Buffer, RegExp][] = [
        ['{"method": "Initialize", ', /invalid request/],
        ['[1,2]', /invalid request/],
        ['{"method": 5, "args": []}', /invalid request/],
        ['{"method": "OpenImage", "args": "x"}', /invalid request/],
        ['{"method": "NoSuchMethod", "args": []}', /unknown method: NoSuchMethod/],
        [Buffer.alloc(MAX_MESSAGE_SIZE + 100, 0x20), /larger than 32768 bytes/],
      ];
      for (const [body, pattern] of cases) {
        const reply = await p.sendRaw(Buffer.isBuffer(body) ? body : Buffer.from(body));
        const json = reply.json as { success: boolean; error: string; error_code: string; pipeid: number; value: unknown };
        assert.equal(json.success, false, String(body).slice(0, 40));
        assert.match(json.error, pattern);
        assert.equal(json.error_code, 'other');
        assert.equal(reply.fds.length, 0);
      }
      assert.ok((await p.openImage(`oci:${ociDir}:latest`)) > 0, 'still serving');
    });
  });

  it('errors quote only a short prefix of the input, so every reply fits the 32 KiB a client reads', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      const long = `sha256:${'a'.repeat(24_000)}`;
      const requests = [
        { method: 'GetBlob', args: [id, long, 1] },
        { method: 'OpenImage', args: [`oci:${ociDir}:${'x'.repeat(24_000)}!`] },
        { method: 'OpenImage', args: [`${'t'.repeat(24_000)}:x`] },
        { method: 'N'.repeat(24_000), args: [] },
      ];
      for (const request of requests) {
        const reply = await p.sendRaw(Buffer.from(JSON.stringify(request)));
        assert.ok(reply.data.length <= MAX_MESSAGE_SIZE, `${request.method.slice(0, 20)}: ${reply.data.length}-byte reply`);
        const json = reply.json as { success: boolean; error: string };
        assert.equal(json.success, false);
        assert.match(json.error, /…\[\d+ characters\]/);
      }
      assert.ok((await p.openImage(`oci:${ociDir}:latest`)) > 0, 'still serving');
    });
  });

  it('every method checks its argument count and types', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      const d = layers[0]!.digest;
      const bad: [string, unknown[], RegExp][] = [
        ['Initialize', [1], /expecting zero arguments/],
        ['OpenImage', [], /found 0 args, expecting \(imageref\)/],
        ['OpenImage', [5], /expecting string imageref, not float64/],
        ['OpenImageOptional', [null], /expecting string imageref, not <nil>/],
        ['CloseImage', ['1'], /expecting integer imgid, not string/],
        ['CloseImage', [0], /invalid imageid value of zero/],
        ['GetManifest', [id, 1], /found 2 args/],
        ['GetManifest', [1.5], /non-negative integer/],
        ['GetFullConfig', [-1], /non-negative integer/],
        ['GetConfig', [2 ** 53], /out of range integer/],
        ['GetBlob', [id, d], /found 2 args, expecting \(imgid, digest, size\)/],
        ['GetBlob', [id, 7, 1], /expecting string digest/],
        ['GetBlob', [id, d, 'big'], /expecting integer size/],
        ['GetRawBlob', [id], /expecting \(imgid, digest\)/],
        ['GetLayerInfo', [], /expecting \(imgid\)/],
        ['GetLayerInfoPiped', [{}], /expecting integer imgid/],
        ['FinishPipe', [], /expecting \(pipeid\)/],
        ['FinishPipe', [true], /expecting integer pipeid, not bool/],
        ['OpenImage', ['nonsense'], /Invalid image name/],
        ['OpenImage', ['foo:bar'], /unknown transport "foo"/],
        ['OpenImage', [`oci:${ociDir}:a..b`], /Invalid image a\.\.b/],
      ];
      for (const [method, args, pattern] of bad) {
        const reply = await p.sendRaw(Buffer.from(JSON.stringify({ method, args })));
        const json = reply.json as { success: boolean; error: string; fds?: unknown };
        assert.equal(json.success, false, `${method} ${JSON.stringify(args)}`);
        assert.match(json.error, pattern, `${method} ${JSON.stringify(args)}`);
      }
      assert.equal((await p.getManifest(id)).digest, oci.digest, 'still serving');
    });
  });

  it('bad and hostile digests never become paths', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      for (const digest of ['sha256:../../etc/passwd', 'sha256:' + 'A'.repeat(64), 'md5:abc', 'nodigest', `sha256:${'0'.repeat(63)}/`]) {
        await expectProxyError(p.getBlob(id, digest, 1), /digest/);
        await expectProxyError(p.call(METHODS.GetRawBlob, [id, digest]), /digest/);
      }
      await expectProxyError(p.getBlob(id, `sha256:${'0'.repeat(64)}`, 1), /no such file/);
    });
  });

  it('a symlinked blob pointing out of the layout is refused', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${escapeDir}:latest`);
      await expectProxyError(p.getBlob(id, layers[0]!.digest, layers[0]!.compressed.length), /points outside/);
    });
  });

  it('a corrupted blob on disk: FinishPipe reports it', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${corruptDir}:latest`);
      const t = await p.getBlob(id, layers[1]!.digest, layers[1]!.compressed.length);
      // On failure the write end closes at once: reading alone reaches EOF with every byte.
      const data = await readAll(t.stream);
      assert.equal(data.length, layers[1]!.compressed.length);
      const result = await t.finish().then(() => 'ok', (e: Error) => e);
      assert.ok(result instanceof ProxyError);
      assert.match(result.message, new RegExp(`corrupted blob, expecting ${layers[1]!.digest}`));
      // A raw blob is not verified: the client gets the bytes and checks them itself.
      const raw = await p.getRawBlob(id, layers[1]!.digest);
      const rawData = await readAll(raw.stream);
      assert.equal(await raw.error, null);
      assert.notEqual(sha256(rawData), layers[1]!.digest);
      assert.ok((await p.openImage(`oci:${ociDir}:latest`)) > 0, 'still serving');
      void corrupt;
    });
  });

  it('a wrong expected size is reported by FinishPipe', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      const t = await p.getBlob(id, layers[0]!.digest, layers[0]!.compressed.length + 5);
      const [, result] = await Promise.all([readAll(t.stream), t.finish().then(() => 'ok', (e: Error) => e)]);
      assert.ok(result instanceof ProxyError);
      assert.match(result.message, /expected \d+ bytes in blob, got \d+/);
    });
  });

  it('the client closing its pipe early: EPIPE error code ending in "broken pipe"', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      const r = await p.call(METHODS.GetBlob, [id, layers[1]!.digest, layers[1]!.compressed.length]);
      native.close(r.fds[0]!);
      const err = await expectProxyError(p.finishPipe(r.pipeid), /broken pipe$/, 'EPIPE');
      assert.equal(err.retryable, false);
      const raw = await p.call(METHODS.GetRawBlob, [id, layers[2]!.digest]);
      native.close(raw.fds[0]!);
      const report = JSON.parse((await readAll(pipe(raw.fds[1]!))).toString()) as { code: string; message: string };
      assert.equal(report.code, 'EPIPE');
      assert.match(report.message, /broken pipe$/);
      assert.equal((await p.getManifest(id)).digest, oci.digest, 'still serving');
    });
  });
});

describe('concurrency', () => {
  it('streams every layer at once with GetBlob, and with GetRawBlob', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      const transfers = await Promise.all(layers.map((l) => p.getBlob(id, l.digest, l.compressed.length)));
      // All pipes are open at once; read them in reverse order to prove independence.
      const reads = Promise.all([...transfers].reverse().map((t) => readAll(t.stream)));
      const [datas] = await Promise.all([reads, Promise.all(transfers.map((t) => t.finish()))]);
      assert.deepEqual(datas.reverse().map(sha256), layers.map((l) => l.digest));
      const raws = await Promise.all(layers.map((l) => p.getRawBlob(id, l.digest)));
      const rawData = await Promise.all(raws.map((r) => readAll(r.stream)));
      assert.deepEqual(rawData.map(sha256), layers.map((l) => l.digest));
      assert.deepEqual(await Promise.all(raws.map((r) => r.error)), layers.map(() => null));
    });
  });

  it('FinishPipe of a finished copy returns while another copy is still blocked', async () => {
    await withProxy(async (p) => {
      const id = await p.openImage(`oci:${ociDir}:latest`);
      // The big blob is not read: its copy stays blocked on a full pipe.
      const stuck = await p.call(METHODS.GetBlob, [id, layers[1]!.digest, layers[1]!.compressed.length]);
      const small = await p.getBlob(id, layers[0]!.digest, layers[0]!.compressed.length);
      const [data] = await Promise.all([readAll(small.stream), small.finish()]);
      assert.equal(sha256(data), layers[0]!.digest);
      const [big] = await Promise.all([readAll(pipe(stuck.fds[0]!)), p.finishPipe(stuck.pipeid)]);
      assert.equal(sha256(big), layers[1]!.digest);
    });
  });
});
