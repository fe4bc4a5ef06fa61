/**
 * Hostile local files against the real binary, through the TypeScript client: FIFOs and
 * devices where index.json, manifest.json, a blob or the archive itself should be, and a
 * layout whose nested indexes fan out 32 ways over 5 levels. Each is answered with a clear
 * error within a second; afterwards the proxy still serves, and it exits 0 as soon as the
 * client closes (a pool thread stuck in open() of a FIFO used to keep it alive forever).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, ProxyError, readAll } from '../../clients/typescript';
import { memoryOf } from '../harness/archive-large';
import { mkfifo, writeFanOutLayout } from '../harness/hostile-layouts';
import { within } from '../harness/method-suite';
import { makeLayer, writeDirImage, writeOciImage, type BuiltLayer } from '../harness/oci-builder';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-hostile-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const at = (...p: string[]) => path.join(tmp, ...p);
const layer: BuiltLayer = makeLayer({ 'a.txt': 'a\n' });
const blobOf = (dir: string) => path.join(dir, 'blobs', 'sha256', layer.digest.slice(7));

before(() => {
  writeOciImage(at('good'), { layers: [layer] }, 'latest');
  writeOciImage(at('fifo-index'), { layers: [layer] }, 'latest');
  unlinkSync(at('fifo-index', 'index.json'));
  mkfifo(at('fifo-index', 'index.json'));
  writeOciImage(at('fifo-blob'), { layers: [layer] }, 'latest');
  unlinkSync(blobOf(at('fifo-blob')));
  mkfifo(blobOf(at('fifo-blob')));
  writeOciImage(at('zero-blob'), { layers: [layer] }, 'latest');
  unlinkSync(blobOf(at('zero-blob')));
  symlinkSync('/dev/zero', blobOf(at('zero-blob')));
  writeDirImage(at('dir-fifo-manifest'), { layers: [layer] });
  unlinkSync(at('dir-fifo-manifest', 'manifest.json'));
  mkfifo(at('dir-fifo-manifest', 'manifest.json'));
  writeDirImage(at('dir-fifo-blob'), { layers: [layer] });
  unlinkSync(at('dir-fifo-blob', layer.digest.slice(7)));
  mkfifo(at('dir-fifo-blob', layer.digest.slice(7)));
  mkfifo(at('archive.tar'));
  symlinkSync('/dev/zero', at('zero.tar'));
  writeFanOutLayout(at('fan'), 32, 5);
});

async function failsWithin(p: Promise<unknown>, pattern: RegExp, what: string): Promise<string> {
  const t0 = performance.now();
  const err = await within(1000, p.then(() => undefined, (e: unknown) => e), what);
  assert.ok(err instanceof ProxyError, `${what}: expected an error reply, got ${String(err)}`);
  assert.match(err.message, pattern, what);
  return `${what}: ${(performance.now() - t0).toFixed(0)} ms: ${err.message}`;
}

/** Runs `fn` on a fresh proxy, then checks it still serves and exits 0 promptly once the client closes. */
async function withProxy(fn: (p: ImageProxy) => Promise<void>): Promise<void> {
  const proxy = await ImageProxy.spawn({ exitTimeoutMs: 5000 });
  let failure: unknown;
  try {
    await proxy.initialize();
    await fn(proxy);
    const id = await within(1000, proxy.openImage(`oci:${at('good')}:latest`), 'OpenImage of a good layout afterwards');
    const t = await proxy.getBlob(id, layer.digest, layer.compressed.length);
    const [data] = await Promise.all([readAll(t.stream), t.finish()]);
    assert.deepEqual(data, layer.compressed);
  } catch (err) {
    failure = err;
  }
  const t0 = performance.now();
  const code = await proxy.close();
  const ms = performance.now() - t0;
  console.log(`# proxy exit after the client closed: status ${code}, signal ${proxy.exitSignal}, ${ms.toFixed(0)} ms`);
  if (failure !== undefined) throw failure;
  assert.equal(proxy.exitSignal, null, 'exited by itself, not killed');
  assert.equal(code, 0, proxy.stderr);
  assert.ok(ms < 3000, 'exits soon after the client closes');
}

describe('FIFOs and devices instead of files', () => {
  it('oci: index.json as a FIFO', () => withProxy(async (p) => {
    console.log('# ' + await failsWithin(p.openImage(`oci:${at('fifo-index')}:latest`), /fifo-index\/index\.json is a FIFO, not a regular file$/, 'FIFO index.json'));
  }));

  it('oci: a blob as a FIFO, and as a symlink to /dev/zero', () => withProxy(async (p) => {
    const fifo = await p.openImage(`oci:${at('fifo-blob')}:latest`);
    console.log('# ' + await failsWithin(p.getBlob(fifo, layer.digest, layer.compressed.length), /is a FIFO, not a regular file$/, 'FIFO blob'));
    console.log('# ' + await failsWithin(p.getRawBlob(fifo, layer.digest), /is a FIFO, not a regular file$/, 'FIFO raw blob'));
    const zero = await p.openImage(`oci:${at('zero-blob')}:latest`);
    console.log('# ' + await failsWithin(p.getBlob(zero, layer.digest, layer.compressed.length), /symbolic link on the path points outside/, '/dev/zero blob'));
  }));

  it('dir: manifest.json and a blob as FIFOs', () => withProxy(async (p) => {
    console.log('# ' + await failsWithin(p.openImage(`dir:${at('dir-fifo-manifest')}`), /manifest\.json is a FIFO, not a regular file$/, 'dir: FIFO manifest.json'));
    const id = await p.openImage(`dir:${at('dir-fifo-blob')}`);
    console.log('# ' + await failsWithin(p.getBlob(id, layer.digest, layer.compressed.length), /is a FIFO, not a regular file$/, 'dir: FIFO blob'));
  }));

  it('oci-archive: and docker-archive: of a FIFO or a character device', () => withProxy(async (p) => {
    for (const transport of ['oci-archive', 'docker-archive']) {
      console.log('# ' + await failsWithin(p.openImage(`${transport}:${at('archive.tar')}`), /archive ".*archive\.tar" is a FIFO, not a regular file$/, `${transport}: FIFO`));
      console.log('# ' + await failsWithin(p.openImage(`${transport}:${at('zero.tar')}`), /is a character device, not a regular file$/, `${transport}: /dev/zero`));
    }
  }));

  it('several FIFO requests in flight at once do not block the ones behind them', () => withProxy(async (p) => {
    const results = await within(2000, Promise.allSettled([
      p.openImage(`oci:${at('fifo-index')}:latest`),
      p.openImage(`oci-archive:${at('archive.tar')}`),
      p.openImage(`dir:${at('dir-fifo-manifest')}`),
      p.openImage(`oci:${at('good')}:latest`),
    ]), 'four OpenImage calls');
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected', 'fulfilled']);
  }));
});

describe('nested indexes fanning out 32 ways, 5 levels deep', () => {
  it('a missing ref is "no descriptor found" at once, as skopeo says; a ref at the bottom is found; RSS stays small', () => withProxy(async (p) => {
    const message = await failsWithin(p.openImage(`oci:${at('fan')}:missing`), /^no descriptor found for reference "missing"$/, 'fan-out, missing ref');
    console.log(`# ${message}`);
    const t0 = performance.now();
    const id = await within(1000, p.openImage(`oci:${at('fan')}:deep`), 'fan-out, ref at the bottom');
    console.log(`# fan-out, ref at the bottom: found in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(id > 0);
    const { peak } = memoryOf(p.pid!);
    console.log(`# fan-out: proxy peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(peak < 150 * 2 ** 20, `peak RSS ${peak}`);
    if (spawnSync('skopeo', ['--version']).status === 0) {
      const skopeo = await ImageProxy.spawn({ command: 'skopeo' });
      try {
        await skopeo.initialize();
        const theirs = await skopeo.openImage(`oci:${at('fan')}:missing`).then(() => undefined, (e: Error) => e.message);
        assert.equal(theirs, 'no descriptor found for reference "missing"', 'the same words as skopeo 1.9.3');
      } finally {
        await skopeo.close();
      }
    }
  }));
});
