/**
 * resolveLayoutDescriptor on nested indexes, over an in-memory layout that counts its reads:
 * each nested index is read once however often it is listed, and the depth, the number of
 * nested indexes and the descriptors in them are bounded with a clear error.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { BlobNotFoundError, ImageNotFoundError, UnsupportedError } from '../../protocol/errors';
import type { OpenedFile } from '../../server/transports/local/confined-dir';
import {
  MAX_INDEX_DEPTH, MAX_NESTED_DESCRIPTORS, MAX_NESTED_INDEXES, resolveLayoutDescriptor, type LayoutFiles,
} from '../../server/transports/oci/layout';
import { MT, sha256 } from '../harness/oci-builder';

interface Entry {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Record<string, string>;
}

class MemoryLayout implements LayoutFiles {
  readonly files = new Map<string, Buffer>();
  reads = 0;

  /** Stores an index listing `entries`; its descriptor. */
  index(entries: readonly Entry[], extra: Record<string, unknown> = {}): Entry {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: entries, ...extra }));
    const digest = sha256(bytes);
    this.files.set(`blobs/sha256/${digest.slice(7)}`, bytes);
    return { mediaType: MT.ociIndex, digest, size: bytes.length };
  }

  top(entries: readonly Entry[]): void {
    this.files.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: entries })));
  }

  async read(rel: string, limit: number): Promise<Buffer> {
    this.reads++;
    const b = this.files.get(rel);
    if (b === undefined) throw new BlobNotFoundError(`${rel}: no such file or directory`);
    assert.ok(b.length <= limit);
    return b;
  }

  open(_rel: string): Promise<OpenedFile> {
    throw new Error('not used');
  }
}

const image = (ref?: string): Entry => ({
  mediaType: MT.ociManifest,
  digest: sha256(ref ?? 'image'),
  size: 100,
  ...(ref !== undefined ? { annotations: { 'org.opencontainers.image.ref.name': ref } } : {}),
});

/** index.json -> `depth` levels, each listing the next `width` times; the deepest lists image "deep". */
function fanOut(width: number, depth: number): MemoryLayout {
  const layout = new MemoryLayout();
  let level = layout.index([image('deep')]);
  for (let i = 1; i < depth; i++) level = layout.index(Array.from({ length: width }, () => level));
  layout.top(Array.from({ length: width }, () => level));
  return layout;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof Error, 'expected a rejection');
  return err;
}

describe('nested indexes', () => {
  it('32 copies per level, 5 levels: each index read once, found or "no descriptor found" at once', async () => {
    const found = fanOut(32, 5);
    const d = await resolveLayoutDescriptor(found, 'deep', 'fan');
    assert.equal(d.digest, image('deep').digest);
    assert.equal(found.reads, 1 + 5, 'index.json and five distinct nested indexes');
    const missing = fanOut(32, 5);
    const err = await failure(resolveLayoutDescriptor(missing, 'missing', 'fan'));
    assert.ok(err instanceof ImageNotFoundError);
    assert.equal(err.message, 'no descriptor found for reference "missing"');
    assert.equal(missing.reads, 6);
  });

  it(`a ref ${MAX_INDEX_DEPTH} levels down is found; one level deeper is refused as too deep`, async () => {
    assert.equal((await resolveLayoutDescriptor(fanOut(1, MAX_INDEX_DEPTH), 'deep', 'chain')).digest, image('deep').digest);
    const err = await failure(resolveLayoutDescriptor(fanOut(1, MAX_INDEX_DEPTH + 1), 'deep', 'chain'));
    assert.ok(err instanceof UnsupportedError, String(err));
    assert.match(err.message, /^no descriptor found for reference "deep": image indexes in chain nest more than 8 levels deep/);
  });

  it(`more than ${MAX_NESTED_INDEXES} distinct nested indexes are not all read`, async () => {
    const layout = new MemoryLayout();
    // Distinct indexes (an annotation makes each unique), all at the first level.
    layout.top(Array.from({ length: MAX_NESTED_INDEXES + 10 }, (_, i) => layout.index([image()], { annotations: { n: String(i) } })));
    const err = await failure(resolveLayoutDescriptor(layout, 'x', 'wide'));
    assert.ok(err instanceof UnsupportedError, String(err));
    assert.match(err.message, /wide has more than 64 nested image indexes/);
    assert.equal(layout.reads, 1 + MAX_NESTED_INDEXES);
  });

  it(`more than ${MAX_NESTED_DESCRIPTORS} descriptors in nested indexes are refused`, async () => {
    const layout = new MemoryLayout();
    const many = Array.from({ length: 20_000 }, () => image());
    // Four indexes of 20,000 (each under the 4 MiB manifest limit): the fourth passes the bound.
    layout.top(Array.from({ length: 4 }, (_, i) => layout.index(many, { annotations: { n: String(i) } })));
    const err = await failure(resolveLayoutDescriptor(layout, 'x', 'big'));
    assert.ok(err instanceof UnsupportedError, String(err));
    assert.match(err.message, /nested image indexes of big hold more than 65536 descriptors/);
  });

  it('the ref at the shallowest level wins, as before', async () => {
    const layout = new MemoryLayout();
    const nested = layout.index([{ ...image('v1'), digest: sha256('nested') }]);
    layout.top([nested, image('v1')]);
    assert.equal((await resolveLayoutDescriptor(layout, 'v1', 'x')).digest, image('v1').digest);
    assert.equal(layout.reads, 1);
  });
});
