/**
 * The proxy's methods, written once and run against every wire (test/methods/*-wire.test.ts
 * plug a wire in): what each method answers, and the lifetimes around them — CloseImage while
 * a transfer runs (the hang this suite first reproduced), a connection that dies mid-transfer,
 * verification failures reported only after every verified byte.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { LayerInfo } from '../../protocol/methods';
import { makeLayer, randomLayer, sha256, writeOciImage, type BuiltLayer, type WrittenManifest } from './oci-builder';

export interface BlobHandle {
  readonly size: number;
  readonly stream: Readable;
  /** Collects the transfer's result (the skopeo wire's FinishPipe). */
  finish(): Promise<void>;
}

export interface RawBlobHandle {
  readonly size: number;
  readonly stream: Readable;
  /** null when the transfer succeeded, else what the server reported. */
  readonly error: Promise<{ code: string; message: string } | null>;
}

/** One connection to a proxy, through one wire, already initialised. */
export interface WireClient {
  openImage(ref: string): Promise<number>;
  /** null for "no such image". */
  openImageOptional(ref: string): Promise<number | null>;
  closeImage(id: number): Promise<void>;
  getManifest(id: number): Promise<{ digest: string; bytes: Buffer }>;
  getFullConfig(id: number): Promise<Record<string, unknown>>;
  getConfig(id: number): Promise<Record<string, unknown>>;
  getLayerInfo(id: number): Promise<LayerInfo[]>;
  getBlob(id: number, digest: string, size: number): Promise<BlobHandle>;
  getRawBlob(id: number, digest: string): Promise<RawBlobHandle>;
  /** Drops the connection with no goodbye; resolves once the server has let go of the session (its exit status, for a one-session process). */
  disconnect(): Promise<number | null>;
  /** A clean end (the wire's shutdown, or a close). */
  close(): Promise<void>;
}

export interface WireUnderTest {
  readonly name: string;
  connect(extraArgs?: readonly string[]): Promise<WireClient>;
}

/** Fails instead of hanging: the regressions this suite guards against are hangs. */
export async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads until `count` bytes arrived (or the end), then stops reading without consuming more. */
function readSome(stream: Readable, count: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (chunk: Buffer): void => {
      got += chunk.length;
      if (got >= count) {
        stream.pause();
        stream.off('data', onData);
        resolve(got);
      }
    };
    stream.on('data', onData);
    stream.once('end', () => resolve(got));
    stream.once('error', reject);
  });
}

/** Reads the rest of a stream; how many bytes, and whether it ended (rather than failed). */
async function drain(stream: Readable): Promise<number> {
  let total = 0;
  stream.resume();
  for await (const chunk of stream as AsyncIterable<Buffer>) total += chunk.length;
  return total;
}

async function readAllOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const outcome = await promise.then(() => undefined, (err: unknown) => err);
  assert.ok(outcome instanceof Error, `expected a failure matching ${pattern}, got success`);
  assert.match(outcome.message, pattern);
}

const BIG_LAYER_BYTES = 8 * 1024 * 1024;

export function defineMethodSuite(wire: WireUnderTest): void {
  const tmp = mkdtempSync(path.join(os.tmpdir(), `layerpipe-methods-${wire.name}-`));
  const ociDir = path.join(tmp, 'oci');
  const corruptDir = path.join(tmp, 'corrupt');
  const archive = path.join(tmp, 'big.tar');
  const small = makeLayer({ 'hello.txt': 'hello\n' });
  let big: BuiltLayer;
  let oci: WrittenManifest;

  before(() => {
    big = randomLayer(BIG_LAYER_BYTES, 'big.bin');
    oci = writeOciImage(ociDir, { layers: [small, big] }, 'latest');
    // The issue's reproduction: an oci-archive whose layer is 8 MiB.
    execFileSync('tar', ['-C', ociDir, '-cf', archive, '.']);
    writeOciImage(corruptDir, { layers: [big] }, 'latest');
    const bad = Buffer.from(big.compressed);
    bad[bad.length - 10] = bad[bad.length - 10]! ^ 0xff;
    writeFileSync(path.join(corruptDir, 'blobs', 'sha256', big.digest.slice(7)), bad);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  async function withClient<T>(fn: (c: WireClient) => Promise<T>): Promise<T> {
    const client = await wire.connect();
    try {
      return await fn(client);
    } finally {
      await client.close();
    }
  }

  describe(`methods over the ${wire.name} wire`, () => {
    it('answers manifest, configs, layer info and verified blobs', async () => {
      await withClient(async (c) => {
        const id = await c.openImage(`oci:${ociDir}:latest`);
        const m = await c.getManifest(id);
        assert.equal(m.digest, oci.digest);
        assert.deepEqual(m.bytes, oci.bytes);
        const full = await c.getFullConfig(id);
        assert.deepEqual((full.rootfs as { diff_ids: string[] }).diff_ids, [small.diffId, big.diffId]);
        assert.deepEqual((await c.getConfig(id)).Cmd, ['/bin/sh']);
        assert.deepEqual((await c.getLayerInfo(id)).map((l) => [l.digest, l.size]), [[small.digest, small.compressed.length], [big.digest, big.compressed.length]]);
        const blob = await c.getBlob(id, big.digest, big.compressed.length);
        const [bytes] = await Promise.all([readAllOf(blob.stream), blob.finish()]);
        assert.equal(sha256(bytes), big.digest);
        const raw = await c.getRawBlob(id, small.digest);
        assert.deepEqual(await readAllOf(raw.stream), small.compressed);
        assert.equal(await raw.error, null);
        await c.closeImage(id);
        await rejectsWith(c.getManifest(id), new RegExp(`no image ${id}`));
      });
    });

    it('OpenImageOptional answers "no image" only for a missing image', async () => {
      await withClient(async (c) => {
        assert.equal(await c.openImageOptional(`oci:${ociDir}:nosuchref`), null);
        await rejectsWith(c.openImageOptional(`oci:${path.join(tmp, 'nowhere')}:x`), /nowhere/);
        assert.ok(((await c.openImageOptional(`oci:${ociDir}:latest`)) ?? 0) > 0);
      });
    });

    it('a corrupt blob: every byte is delivered, then the mismatch is reported', async () => {
      await withClient(async (c) => {
        const id = await c.openImage(`oci:${corruptDir}:latest`);
        const blob = await c.getBlob(id, big.digest, big.compressed.length);
        const [received, outcome] = await Promise.all([drain(blob.stream), blob.finish().then(() => undefined, (e: unknown) => e)]);
        assert.equal(received, big.compressed.length, 'no byte withheld before the error');
        assert.ok(outcome instanceof Error);
        assert.match(outcome.message, /corrupted blob, expecting sha256:/);
      });
    });

    for (const transport of ['oci-archive', 'oci'] as const) {
      it(`CloseImage during a GetBlob (${transport}): the reader sees the end, FinishPipe says why, the connection keeps answering`, async () => {
        await withClient(async (c) => {
          const ref = transport === 'oci' ? `oci:${ociDir}:latest` : `oci-archive:${archive}:latest`;
          const id = await c.openImage(ref);
          const blob = await c.getBlob(id, big.digest, big.compressed.length);
          await within(5000, readSome(blob.stream, 64 * 1024), 'the first 64 KiB');
          await within(5000, c.closeImage(id), 'CloseImage');
          const rest = within(5000, drain(blob.stream), 'the reader reaching the end after CloseImage');
          await within(5000, rejectsWith(blob.finish(), /closed/), 'FinishPipe after CloseImage');
          assert.ok((await rest) < big.compressed.length, 'the transfer stopped early');
          const again = await within(5000, c.openImage(ref), 'OpenImage after the cancelled transfer');
          const second = await c.getBlob(again, big.digest, big.compressed.length);
          const [bytes] = await Promise.all([readAllOf(second.stream), second.finish()]);
          assert.equal(sha256(bytes), big.digest);
        });
      });
    }

    it('CloseImage during a GetRawBlob reports the cancellation on the error pipe', async () => {
      await withClient(async (c) => {
        const id = await c.openImage(`oci-archive:${archive}:latest`);
        const raw = await c.getRawBlob(id, big.digest);
        await within(5000, readSome(raw.stream, 64 * 1024), 'the first 64 KiB');
        await within(5000, c.closeImage(id), 'CloseImage');
        void drain(raw.stream).catch(() => undefined);
        const reported = await within(5000, raw.error, 'the error pipe');
        assert.ok(reported !== null, 'a cut raw transfer is reported');
        assert.match(reported.message, /closed/);
      });
    });

    it('a connection that dies mid-transfer frees the session: the server lets go at once', async () => {
      const c = await wire.connect();
      const id = await c.openImage(`oci-archive:${archive}:latest`);
      const blob = await c.getBlob(id, big.digest, big.compressed.length);
      await within(5000, readSome(blob.stream, 64 * 1024), 'the first 64 KiB');
      const status = await within(5000, c.disconnect(), 'the server noticing the dead connection');
      blob.stream.destroy();
      assert.equal(status, 0);
    });
  });
}
