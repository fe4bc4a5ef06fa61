/**
 * The one open path (server/image/open.ts, unparsed.ts) and OpenedImage (image.ts), over an
 * in-memory ImageSource: a test double of the transport interface that records what it was
 * asked for, so each test can tell what was read, in which order, and whether it was closed.
 */
import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  BlobNotFoundError, DigestMismatchError, ImageNotFoundError, InvalidArgumentError, PlatformNotFoundError, UnsupportedError,
} from '../../protocol/errors';
import { ociConfigBytes } from '../../server/image/config';
import { readAll } from '../../server/image/image';
import { MAX_CONFIG_SIZE, MediaTypes } from '../../server/image/manifest';
import { openImage, openImageByName } from '../../server/image/open';
import { simpleSigning, type ImageSignature } from '../../server/image/signatures';
import type { BlobReader, BlobRequest, ImageReference, ImageSource, RawManifest, SystemContext, Transport } from '../../server/image/types';
import { UnparsedImage } from '../../server/image/unparsed';
import { neverAborted, testContext } from '../harness/context';
import { sha256 } from '../harness/oci-builder';

const fakeTransport: Transport = { name: 'fake', parseReference: () => { throw new Error('not used'); } };

class FakeSource implements ImageSource {
  readonly manifestCalls: (string | undefined)[] = [];
  readonly blobCalls: BlobRequest[] = [];
  closed = 0;
  getSignatures?: (instanceDigest: string | undefined, signal: AbortSignal) => Promise<ImageSignature[]>;

  constructor(
    readonly reference: ImageReference,
    /** Manifests by instance digest; '' is the top level. */
    private readonly manifests: ReadonlyMap<string, RawManifest>,
    private readonly blobs: ReadonlyMap<string, Buffer>,
  ) {}

  async getManifest(instanceDigest: string | undefined): Promise<RawManifest> {
    this.manifestCalls.push(instanceDigest);
    const m = this.manifests.get(instanceDigest ?? '');
    if (m === undefined) throw new ImageNotFoundError(`no manifest ${instanceDigest ?? '(top)'}`);
    return m;
  }

  async getBlob(request: BlobRequest): Promise<BlobReader> {
    this.blobCalls.push(request);
    const b = this.blobs.get(request.digest);
    if (b === undefined) throw new BlobNotFoundError(`no blob ${request.digest}`);
    return { stream: Readable.from([b]), size: b.length };
  }

  async close(): Promise<void> {
    this.closed++;
  }
}

class FakeReference implements ImageReference {
  readonly transport = fakeTransport;
  readonly dockerReference = undefined;
  source: FakeSource | undefined;
  constructor(private readonly make: (ref: FakeReference) => FakeSource) {}
  toString(): string {
    return 'fake:image';
  }
  policyIdentity(): string {
    return '';
  }
  policyNamespaces(): string[] {
    return [];
  }
  async newImageSource(): Promise<ImageSource> {
    this.source = this.make(this);
    return this.source;
  }
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const CONFIG = json({ architecture: 'arm64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [] }, docker_version: '1' });
const LAYER = Buffer.from('layer bytes');

function imageManifest(docker: boolean, config = CONFIG, configType?: string): Buffer {
  return json({
    schemaVersion: 2,
    mediaType: docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest,
    config: { mediaType: configType ?? (docker ? MediaTypes.dockerConfig : MediaTypes.ociConfig), digest: sha256(config), size: config.length },
    layers: [{ mediaType: docker ? MediaTypes.dockerLayerGzip : MediaTypes.ociLayerGzip, digest: sha256(LAYER), size: LAYER.length }],
  });
}

interface Setup {
  readonly top: Buffer;
  readonly topType?: string;
  readonly instances?: readonly Buffer[];
  /** Bytes served for an instance's digest instead of the instance itself. */
  readonly tamper?: ReadonlyMap<string, Buffer>;
  readonly config?: Buffer;
}

function fakeImage(s: Setup): FakeReference {
  const manifests = new Map<string, RawManifest>([['', { bytes: s.top, mediaType: s.topType ?? '' }]]);
  for (const m of s.instances ?? []) manifests.set(sha256(m), { bytes: s.tamper?.get(sha256(m)) ?? m, mediaType: '' });
  const config = s.config ?? CONFIG;
  const blobs = new Map([[sha256(config), config], [sha256(LAYER), LAYER]]);
  return new FakeReference((ref) => new FakeSource(ref, manifests, blobs));
}

function listOf(docker: boolean, entries: readonly [Buffer, { os: string; architecture: string; variant?: string } | undefined][]): Buffer {
  return json({
    schemaVersion: 2,
    mediaType: docker ? MediaTypes.dockerList : MediaTypes.ociIndex,
    manifests: entries.map(([m, platform]) => ({ mediaType: docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest, digest: sha256(m), size: m.length, ...(platform === undefined ? {} : { platform }) })),
  });
}

const ctxFor = (architectureChoice: string, variantChoice = ''): SystemContext => testContext({ osChoice: 'linux', architectureChoice, variantChoice });
const amd = imageManifest(false, json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
const arm = imageManifest(false);
const multi = listOf(false, [[amd, { os: 'linux', architecture: 'amd64' }], [arm, { os: 'linux', architecture: 'arm64', variant: 'v8' }]]);

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a rejection');
}

describe('UnparsedImage', () => {
  it('holds the top-level manifest as stored, reading nothing else', async () => {
    const ref = fakeImage({ top: multi, instances: [amd, arm] });
    const source = (await ref.newImageSource()) as FakeSource;
    const unparsed = await UnparsedImage.read(source, neverAborted());
    assert.equal(unparsed.manifest.bytes, multi);
    assert.equal(unparsed.manifestType, MediaTypes.ociIndex, 'guessed from the bytes');
    assert.equal(unparsed.manifestDigest, sha256(multi));
    assert.equal(unparsed.reference, ref);
    assert.deepEqual(source.manifestCalls, [undefined]);
    assert.equal(source.blobCalls.length, 0);
    assert.equal(source.closed, 0);
  });

  it('signatures() is [] for a source that cannot store any', async () => {
    const source = (await fakeImage({ top: arm }).newImageSource()) as FakeSource;
    assert.deepEqual(await (await UnparsedImage.read(source, neverAborted())).signatures(), []);
  });

  it('signatures() asks the source for the top-level manifest\'s signatures', async () => {
    const source = (await fakeImage({ top: arm }).newImageSource()) as FakeSource;
    const asked: (string | undefined)[] = [];
    source.getSignatures = async (instance) => {
      asked.push(instance);
      return [simpleSigning(Buffer.from('sig'))];
    };
    const unparsed = await UnparsedImage.read(source, neverAborted());
    const sigs = await unparsed.signatures();
    assert.deepEqual(sigs, [{ format: 'simple-signing', blob: Buffer.from('sig') }]);
    assert.deepEqual(asked, [undefined]);
    assert.equal(await unparsed.signatures(), sigs);
    assert.deepEqual(asked, [undefined], 'read once');
  });

  it('signatures() that failed to be read are read again when next asked', async () => {
    const source = (await fakeImage({ top: arm }).newImageSource()) as FakeSource;
    let calls = 0;
    source.getSignatures = async () => {
      if (++calls === 1) throw new Error('lookaside down');
      return [simpleSigning(Buffer.from('sig'))];
    };
    const unparsed = await UnparsedImage.read(source, neverAborted());
    await assert.rejects(unparsed.signatures(), /lookaside down/);
    assert.equal((await unparsed.signatures()).length, 1);
    assert.equal(calls, 2);
  });
});

describe('openImage', () => {
  it('opens a single image as it is stored', async () => {
    const ref = fakeImage({ top: arm, topType: MediaTypes.ociManifest });
    const image = await openImage(ref, ctxFor('s390x'), neverAborted());
    assert.equal(image.manifestDigest, sha256(arm));
    assert.equal(image.listDigest, undefined);
    assert.equal(image.manifestType, MediaTypes.ociManifest);
    assert.equal(await image.ociManifest(), arm, 'an OCI manifest is handed out unchanged, whatever the platform');
    assert.equal(ref.source!.closed, 0);
    await image.close();
    assert.equal(ref.source!.closed, 1);
  });

  for (const [arch, variant, want] of [['amd64', '', amd], ['arm64', '', arm], ['arm64', 'v8', arm]] as const) {
    it(`resolves a list to the ${arch}${variant} instance and remembers the list`, async () => {
      const ref = fakeImage({ top: multi, instances: [amd, arm] });
      const image = await openImage(ref, ctxFor(arch, variant), neverAborted());
      assert.equal(image.manifestDigest, sha256(want));
      assert.equal(image.manifestBytes, want);
      assert.equal(image.listDigest, sha256(multi));
      assert.deepEqual(ref.source!.manifestCalls, [undefined, sha256(want)]);
    });
  }

  it('refuses an instance whose bytes do not match the list\'s digest, and closes the source', async () => {
    const ref = fakeImage({ top: multi, instances: [amd, arm], tamper: new Map([[sha256(arm), Buffer.concat([arm, Buffer.from(' ')])]]) });
    const err = await rejection(openImage(ref, ctxFor('arm64'), neverAborted()));
    assert.ok(err instanceof DigestMismatchError, err.message);
    assert.equal(ref.source!.closed, 1);
  });

  it('reports a list without this platform as PlatformNotFoundError, and closes the source', async () => {
    const ref = fakeImage({ top: listOf(true, [[arm, { os: 'linux', architecture: 'arm64' }]]), instances: [arm] });
    const err = await rejection(openImage(ref, ctxFor('ppc64le'), neverAborted()));
    assert.ok(err instanceof PlatformNotFoundError, err.message);
    assert.match(err.message, /no image found in manifest list for architecture ppc64le/);
    assert.equal(ref.source!.closed, 1);
  });

  it('refuses a list whose chosen instance is another list, and closes the source', async () => {
    const inner = listOf(false, [[arm, { os: 'linux', architecture: 'arm64' }]]);
    const ref = fakeImage({ top: listOf(false, [[inner, { os: 'linux', architecture: 'arm64' }]]), instances: [inner, arm] });
    const err = await rejection(openImage(ref, ctxFor('arm64'), neverAborted()));
    assert.ok(err instanceof UnsupportedError, err.message);
    assert.equal(ref.source!.closed, 1);
  });

  it('openImageByName rejects a name that does not parse instead of throwing at the caller', async () => {
    let promise: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      promise = openImageByName('nosuchtransport:x', ctxFor('arm64'), neverAborted());
    });
    await assert.rejects(promise!, InvalidArgumentError);
    await assert.rejects(openImageByName('docker-archive:/x.tar:UPPER', ctxFor('arm64'), neverAborted()), InvalidArgumentError);
  });

  it('passes on a missing image as ImageNotFoundError, and closes the source', async () => {
    const ref = new FakeReference((r) => new FakeSource(r, new Map(), new Map()));
    const err = await rejection(openImage(ref, ctxFor('arm64'), neverAborted()));
    assert.ok(err instanceof ImageNotFoundError);
    assert.equal(ref.source!.closed, 1);
  });
});

describe('OpenedImage', () => {
  it('converts a Docker image: the manifest names the OCI config, which is served from memory', async () => {
    const docker = imageManifest(true);
    const ref = fakeImage({ top: docker });
    const signal = new AbortController().signal;
    const image = await openImage(ref, ctxFor('arm64'), signal);
    const oci = JSON.parse((await image.ociManifest()).toString()) as { mediaType: string; config: { digest: string; size: number }; layers: { mediaType: string }[] };
    const full = await image.ociConfig();
    assert.equal(oci.mediaType, MediaTypes.ociManifest);
    assert.deepEqual(oci.config, { mediaType: MediaTypes.ociConfig, digest: sha256(full), size: full.length });
    assert.equal(oci.layers[0]!.mediaType, MediaTypes.ociLayerGzip);
    assert.deepEqual(full, ociConfigBytes(CONFIG));
    assert.equal((await image.runtimeConfig()).toString(), '{"Cmd":["sh"]}');

    const blob = await image.openBlob({ digest: sha256(full), size: full.length, signal: neverAborted() });
    assert.deepEqual(await readAll(blob.stream, 1 << 20, 'config'), full);
    assert.deepEqual(ref.source!.blobCalls.map((b) => b.digest), [sha256(CONFIG)], 'the stored config is read once, the converted one never');
    assert.equal(ref.source!.blobCalls[0]!.signal, signal, 'the image\'s own reads follow its lifetime');
  });

  it('opens layers through the source and lists them as the stored manifest does', async () => {
    const ref = fakeImage({ top: imageManifest(true) });
    const image = await openImage(ref, ctxFor('arm64'), neverAborted());
    assert.deepEqual(image.layerInfos(), [{ digest: sha256(LAYER), size: LAYER.length, media_type: MediaTypes.dockerLayerGzip }]);
    const blob = await image.openBlob({ digest: sha256(LAYER), size: LAYER.length, signal: neverAborted() });
    assert.deepEqual(await readAll(blob.stream, 1 << 20, 'layer'), LAYER);
  });

  it('refuses a malformed blob digest before asking the source', async () => {
    const ref = fakeImage({ top: arm });
    const image = await openImage(ref, ctxFor('arm64'), neverAborted());
    await assert.rejects(image.openBlob({ digest: 'sha256:../x', size: -1, signal: neverAborted() }), InvalidArgumentError);
    assert.equal(ref.source!.blobCalls.length, 0);
  });

  it('refuses a config whose bytes do not match its digest', async () => {
    const manifest = imageManifest(false, CONFIG);
    const other = json({ architecture: 'x', os: 'y' });
    // The source serves other bytes under the config's digest.
    const ref = new FakeReference((r) => new FakeSource(r, new Map([['', { bytes: manifest, mediaType: '' }]]), new Map([[sha256(CONFIG), other]])));
    const image = await openImage(ref, ctxFor('arm64'), neverAborted());
    await assert.rejects(image.ociConfig(), (err: Error) => err instanceof DigestMismatchError && /image config/.test(err.message));
  });

  it('refuses a config larger than the limit without keeping it', async () => {
    const big = Buffer.alloc(MAX_CONFIG_SIZE + 1, 0x20);
    const image = await openImage(fakeImage({ top: imageManifest(false, big), config: big }), ctxFor('arm64'), neverAborted());
    await assert.rejects(image.ociConfig(), (err: Error) => err instanceof UnsupportedError && /larger than/.test(err.message));
  });

  it('refuses image operations on an artifact whose config is no image config', async () => {
    const image = await openImage(fakeImage({ top: imageManifest(false, CONFIG, 'application/vnd.example.thing+json') }), ctxFor('arm64'), neverAborted());
    await assert.rejects(image.ociConfig(), /unsupported image-specific operation on artifact with type "application\/vnd.example.thing\+json"/);
    assert.equal((await image.ociManifest()).length > 0, true, 'the manifest itself is still served');
  });

  it('refuses schema 1 and unknown manifests with skopeo\'s wording', async () => {
    const schema1 = json({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [], signatures: [{}] });
    const s1 = await openImage(fakeImage({ top: schema1 }), ctxFor('arm64'), neverAborted());
    await assert.rejects(s1.ociManifest(), new RegExp(`unsupported legacy manifest MIME type: ${MediaTypes.dockerSchema1Signed.replace(/[.+]/g, '\\$&')}`));
    assert.throws(() => s1.layerInfos(), UnsupportedError);
    const unknown = await openImage(fakeImage({ top: arm, topType: 'application/x-other' }), ctxFor('arm64'), neverAborted());
    await assert.rejects(unknown.ociManifest(), /unsupported manifest MIME type: application\/x-other/);
  });
});
