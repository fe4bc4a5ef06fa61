/**
 * Manifest parsing and media-type guessing (server/image/manifest.ts, manifestTypeOf in
 * unparsed.ts). The expected guesses follow containers/image's GuessMIMEType rules: a
 * recognised top-level mediaType wins, schemaVersion 1 is schema 1 (signed when "signatures"
 * is set), schemaVersion 2 is decided by the config's media type, then by "manifests"; a
 * member of the wrong JSON type makes Go's decoding, and so the guess, fail.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { UnsupportedError } from '../../protocol/errors';
import {
  guessManifestType, isListType, MediaTypes, parseImageManifest, parseManifestList,
} from '../../server/image/manifest';
import { manifestTypeOf } from '../../server/image/unparsed';

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const digest = (c: string): string => `sha256:${c.repeat(64)}`;

describe('guessManifestType', () => {
  const declared = [MediaTypes.dockerManifest, MediaTypes.dockerList, MediaTypes.ociManifest, MediaTypes.ociIndex];
  for (const type of declared) {
    it(`a declared ${type} is taken as declared, whatever the rest says`, () => {
      assert.equal(guessManifestType(json({ schemaVersion: 1, mediaType: type, config: { mediaType: MediaTypes.ociConfig } })), type);
    });
  }

  const cases: [string, unknown, string][] = [
    ['schema 1 without signatures', { schemaVersion: 1, name: 'x', fsLayers: [] }, MediaTypes.dockerSchema1],
    ['schema 1 with null signatures (Go leaves nil)', { schemaVersion: 1, signatures: null }, MediaTypes.dockerSchema1],
    ['schema 1 with signatures', { schemaVersion: 1, signatures: [{}] }, MediaTypes.dockerSchema1Signed],
    ['schema 1 with an empty signature list (not nil in Go)', { schemaVersion: 1, signatures: [] }, MediaTypes.dockerSchema1Signed],
    ['an undeclared OCI manifest, by its config type', { schemaVersion: 2, config: { mediaType: MediaTypes.ociConfig }, layers: [] }, MediaTypes.ociManifest],
    ['an undeclared Docker manifest, by its config type', { schemaVersion: 2, config: { mediaType: MediaTypes.dockerConfig } }, MediaTypes.dockerManifest],
    ['an unknown declared type falls through to the config', { schemaVersion: 2, mediaType: 'application/x', config: { mediaType: MediaTypes.ociConfig } }, MediaTypes.ociManifest],
    ['an undeclared index', { schemaVersion: 2, manifests: [{ digest: digest('a') }] }, MediaTypes.ociIndex],
    ['"manifests" with a custom config type answers the config type', { schemaVersion: 2, config: { mediaType: 'application/x.cfg' }, manifests: [{}] }, 'application/x.cfg'],
    ['an artifact with a custom config type', { schemaVersion: 2, config: { mediaType: 'application/x.cfg' }, layers: [] }, MediaTypes.ociManifest],
    ['an empty "manifests" is no index', { schemaVersion: 2, manifests: [] }, MediaTypes.ociManifest],
    ['keys match case-insensitively, as Go decodes', { SchemaVersion: 2, MEDIATYPE: MediaTypes.dockerList }, MediaTypes.dockerList],
    ['the last of two matching keys wins', { mediaType: MediaTypes.ociIndex, MediaType: MediaTypes.dockerManifest }, MediaTypes.dockerManifest],
    ['schema version 3', { schemaVersion: 3, config: { mediaType: MediaTypes.ociConfig } }, ''],
    ['no schema version', { config: { mediaType: MediaTypes.ociConfig } }, ''],
    ['schemaVersion as a string', { schemaVersion: '2', config: { mediaType: MediaTypes.ociConfig } }, ''],
    ['a fractional schemaVersion', { schemaVersion: 2.5 }, ''],
    ['mediaType of the wrong type', { schemaVersion: 2, mediaType: 7, config: { mediaType: MediaTypes.ociConfig } }, ''],
    ['config that is not an object', { schemaVersion: 2, config: 'x' }, ''],
    ['a config mediaType of the wrong type', { schemaVersion: 2, config: { mediaType: [] } }, ''],
    ['"manifests" that is not an array', { schemaVersion: 2, manifests: {} }, ''],
    ['a "manifests" entry that is not an object', { schemaVersion: 2, manifests: ['x'] }, ''],
  ];
  for (const [name, manifest, want] of cases) {
    it(name, () => assert.equal(guessManifestType(json(manifest)), want));
  }

  it('bytes that are no JSON object give no guess', () => {
    for (const bytes of ['', 'not json', '[1,2]', 'null', '"x"', '{"schemaVersion":2']) {
      assert.equal(guessManifestType(Buffer.from(bytes)), '', bytes);
    }
  });
});

describe('manifestTypeOf', () => {
  const ociBytes = json({ schemaVersion: 2, config: { mediaType: MediaTypes.ociConfig }, layers: [] });
  it('takes the type the source declares', () => {
    assert.equal(manifestTypeOf({ bytes: ociBytes, mediaType: MediaTypes.dockerManifest }), MediaTypes.dockerManifest);
  });
  it('guesses when the source declares nothing or a generic type', () => {
    for (const generic of ['', 'application/json', 'text/plain']) {
      assert.equal(manifestTypeOf({ bytes: ociBytes, mediaType: generic }), MediaTypes.ociManifest, generic);
    }
  });
});

describe('parseImageManifest', () => {
  const layer = { mediaType: MediaTypes.ociLayerGzip, digest: digest('b'), size: 10, urls: ['https://x/y', 5], annotations: { a: 'b' } };
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: digest('a'), size: 3 },
    layers: [layer, { digest: digest('c'), size: 1.5 }],
    annotations: { keep: 'me' },
  };

  it('reads config and layers, keeping the raw object for conversions', () => {
    const m = parseImageManifest(json(manifest), MediaTypes.ociManifest);
    assert.equal(m.mediaType, MediaTypes.ociManifest);
    assert.deepEqual(m.config, { mediaType: MediaTypes.ociConfig, digest: digest('a'), size: 3 });
    assert.equal(m.layers.length, 2);
    assert.deepEqual(m.layers[0], { ...layer, urls: ['https://x/y'] }, 'non-string URLs are dropped');
    assert.deepEqual(m.layers[1], { mediaType: '', digest: digest('c'), size: -1 }, 'no media type is "", a size that is no integer is -1');
    assert.deepEqual(m.raw.annotations, { keep: 'me' });
  });

  const refused: [string, unknown, RegExp][] = [
    ['no layers', { ...manifest, layers: undefined }, /"layers" is not an array/],
    ['a config that is not an object', { ...manifest, config: 'x' }, /descriptor is not an object/],
    ['a layer digest that is no digest', { ...manifest, layers: [{ digest: 'sha256:../../etc/passwd', size: 1 }] }, /manifest layer 0: invalid digest/],
    ['an uppercase digest', { ...manifest, config: { digest: `sha256:${'A'.repeat(64)}`, size: 1 } }, /manifest config: invalid digest/],
  ];
  for (const [name, value, pattern] of refused) {
    it(`refuses ${name}`, () => assert.throws(() => parseImageManifest(json(value), MediaTypes.ociManifest), (err: Error) => err instanceof UnsupportedError && pattern.test(err.message)));
  }
  it('refuses bytes that are not a JSON object', () => {
    assert.throws(() => parseImageManifest(Buffer.from('[]'), MediaTypes.ociManifest), UnsupportedError);
    assert.throws(() => parseImageManifest(Buffer.from('{'), MediaTypes.ociManifest), /parsing manifest/);
  });
});

describe('parseManifestList', () => {
  it('reads entries with their platforms', () => {
    const list = parseManifestList(json({
      schemaVersion: 2,
      manifests: [
        { mediaType: MediaTypes.ociManifest, digest: digest('1'), size: 5, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
        { mediaType: MediaTypes.ociManifest, digest: digest('2'), size: 6 },
      ],
    }), MediaTypes.ociIndex);
    assert.equal(list.mediaType, MediaTypes.ociIndex);
    assert.deepEqual(list.manifests.map((d) => d.digest), [digest('1'), digest('2')]);
    assert.deepEqual(list.manifests[0]!.platform, { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.equal(list.manifests[1]!.platform, undefined);
  });
  it('refuses a list without "manifests" or with a bad entry', () => {
    assert.throws(() => parseManifestList(json({ schemaVersion: 2 }), MediaTypes.ociIndex), /"manifests" is not an array/);
    assert.throws(() => parseManifestList(json({ manifests: [{ digest: 'md5:x' }] }), MediaTypes.ociIndex), /manifest list entry 0: invalid digest/);
  });
  it('isListType knows both list types and nothing else', () => {
    assert.ok(isListType(MediaTypes.ociIndex));
    assert.ok(isListType(MediaTypes.dockerList));
    assert.ok(!isListType(MediaTypes.ociManifest));
    assert.ok(!isListType(MediaTypes.dockerManifest));
    assert.ok(!isListType(''));
  });
});
