/**
 * Docker schema 2 -> OCI conversion (server/image/convert.ts) and the config serialiser behind
 * it. By construction: the layer media-type table of the two specs, and a config descriptor
 * naming the bytes it is given. Against skopeo: `skopeo copy --format oci dir:D oci:O` runs
 * containers/image's own conversion (the one its proxy's GetManifest and GetFullConfig use), so
 * the manifest and config it writes must equal ours byte for byte.
 */
import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { UnsupportedError } from '../../protocol/errors';
import { ociConfigBytes, ociRuntimeConfigBytes } from '../../server/image/config';
import { dockerToOciManifest } from '../../server/image/convert';
import { sha256Digest } from '../../server/image/digest';
import { MediaTypes, parseImageManifest } from '../../server/image/manifest';
import { skopeo, tempDir } from '../harness/archive-fixtures';
import { makeLayer, sha256, writeDirImage } from '../harness/oci-builder';

const digest = (c: string): string => `sha256:${c.repeat(64)}`;

function dockerManifest(layers: readonly { mediaType: string; urls?: string[] }[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.dockerManifest,
    config: { mediaType: MediaTypes.dockerConfig, digest: digest('c'), size: 99 },
    layers: layers.map((l, i) => ({ ...l, digest: digest(String(i)), size: 100 + i })),
  }));
}

describe('dockerToOciManifest', () => {
  it('maps every Docker layer type to its OCI counterpart and names the given config', () => {
    const table: [string, string][] = [
      [MediaTypes.dockerLayerGzip, 'application/vnd.oci.image.layer.v1.tar+gzip'],
      [MediaTypes.dockerLayer, 'application/vnd.oci.image.layer.v1.tar'],
      [MediaTypes.dockerForeignLayerGzip, 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'],
      [MediaTypes.dockerForeignLayer, 'application/vnd.oci.image.layer.nondistributable.v1.tar'],
    ];
    const config = Buffer.from('{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}');
    const bytes = dockerToOciManifest(parseImageManifest(dockerManifest(table.map(([t]) => ({ mediaType: t }))), MediaTypes.dockerManifest), config);
    const m = JSON.parse(bytes.toString()) as { schemaVersion: number; mediaType: string; config: unknown; layers: { mediaType: string; digest: string; size: number }[] };
    assert.equal(m.schemaVersion, 2);
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(m.config, { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length });
    assert.deepEqual(m.layers.map((l) => l.mediaType), table.map(([, oci]) => oci));
    assert.deepEqual(m.layers.map((l) => [l.digest, l.size]), table.map((_, i) => [digest(String(i)), 100 + i]), 'digests and sizes are kept');
  });

  it('keeps the URLs of foreign layers, in Go struct order, and drops an empty list', () => {
    const bytes = dockerToOciManifest(parseImageManifest(dockerManifest([
      { mediaType: MediaTypes.dockerForeignLayerGzip, urls: ['https://example.com/a?x=1&y=<2>'] },
      { mediaType: MediaTypes.dockerLayerGzip, urls: [] },
    ]), MediaTypes.dockerManifest), Buffer.from('{}'));
    const text = bytes.toString();
    assert.ok(text.includes(`{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"${digest('0')}","size":100,"urls":["https://example.com/a?x=1\\u0026y=\\u003c2\\u003e"]}`), text);
    assert.ok(text.includes(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"${digest('1')}","size":101}`), text);
  });

  it('refuses a layer type it cannot map, naming it', () => {
    const m = parseImageManifest(dockerManifest([{ mediaType: 'application/x-zip' }]), MediaTypes.dockerManifest);
    assert.throws(() => dockerToOciManifest(m, Buffer.from('{}')), (err: Error) => err instanceof UnsupportedError && /Unknown media type during manifest conversion: "application\/x-zip"/.test(err.message));
  });
});

/** Configs that exercise the serialiser; each is stored as a Docker config and converted by skopeo. */
const CONFIGS: Record<string, Record<string, unknown>> = {
  'a docker build config': {
    created: '2024-05-01T10:20:30.123456000Z', architecture: 'amd64', os: 'linux', docker_version: '24.0.7', container: 'deadbeef',
    container_config: { Hostname: 'x', Cmd: ['/bin/sh', '-c', '#(nop) CMD'] },
    config: { Env: ['PATH=/usr/bin'], Cmd: ['/bin/sh'], ArgsEscaped: true, OnBuild: null, Labels: null, Healthcheck: { Test: ['NONE'] } },
    history: [{ created: '2024-05-01T10:20:30Z', created_by: '/bin/sh -c #(nop) ADD', empty_layer: false }, { created: '2024-05-01T10:20:31Z', empty_layer: true }],
  },
  'HTML, control characters and sorting': {
    author: 'A <a@b> & \u2028 é \u007f', architecture: 'arm', variant: 'v7', os: 'linux', 'os.version': '1', 'os.features': ['x'],
    config: {
      User: '<u>', ExposedPorts: { '80/tcp': {}, '443/tcp': null, '53/udp': {} }, Volumes: { '/b': {}, '/a': {} },
      Labels: { z: '<>', é: 'x', A: '', '\uff61': '1', '\u{10000}': '2', ctl: '\b\f\u0001\t' }, WorkingDir: '/w&x', StopSignal: 'SIGTERM',
    },
  },
  'nulls, empties and case-folded keys': {
    created: null, Architecture: 'riscv64', OS: 'linux', variant: '', 'os.features': [], history: [null, {}],
    config: { env: ['A=1'], Env: ['B=2'], Cmd: null, Volumes: {}, Labels: { x: null } },
  },
  'times in other zones and precisions': {
    created: '2024-05-01T10:20:30.1234567891+05:30', architecture: 'amd64', os: 'linux',
    history: [{ created: '2024-05-01T10:20:30.000-00:00' }, { created: '2024-02-29T23:59:59.5+00:00', comment: 'c' }],
  },
};

describe('conversion compared with skopeo', () => {
  let dir: string;
  before(() => {
    dir = tempDir('convert');
  });

  for (const [name, extra] of Object.entries(CONFIGS)) {
    it(`${name}: manifest, full config and runtime config equal skopeo's`, () => {
      const src = path.join(dir, `${name.replace(/\W+/g, '-')}-dir`);
      const out = path.join(dir, `${name.replace(/\W+/g, '-')}-oci`);
      const layers = [makeLayer({ 'a.txt': name }), makeLayer({ 'b.txt': 'b' })];
      const written = writeDirImage(src, { layers });
      // Replace the builder's config with this one, keeping its rootfs so skopeo accepts the layers.
      const stored = Buffer.from(JSON.stringify({ rootfs: JSON.parse(written.config.toString()).rootfs, ...extra }));
      writeFileSync(path.join(src, sha256(stored).slice(7)), stored);
      const manifest = JSON.parse(written.bytes.toString()) as { config: { digest: string; size: number } };
      manifest.config = { ...manifest.config, digest: sha256(stored), size: stored.length };
      const manifestBytes = Buffer.from(JSON.stringify(manifest));
      writeFileSync(path.join(src, 'manifest.json'), manifestBytes);

      skopeo(['copy', '-q', '--format', 'oci', `dir:${src}`, `oci:${out}:t`]);
      const index = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      const blob = (d: string) => readFileSync(path.join(out, 'blobs', 'sha256', d.slice(7)));
      const theirManifest = blob(index.manifests[0]!.digest);
      const theirConfig = blob((JSON.parse(theirManifest.toString()) as { config: { digest: string } }).config.digest);

      const ourConfig = ociConfigBytes(stored);
      assert.equal(ourConfig.toString(), theirConfig.toString());
      const ourManifest = dockerToOciManifest(parseImageManifest(manifestBytes, MediaTypes.dockerManifest), ourConfig);
      assert.equal(ourManifest.toString(), theirManifest.toString());
      assert.equal(sha256Digest(ourManifest), index.manifests[0]!.digest);
      assert.ok(theirConfig.toString().includes(`"config":${ociRuntimeConfigBytes(stored).toString()},"rootfs"`));
    });
  }
});
