/**
 * `layerpipe inspect` prints what `skopeo inspect` (1.9.3, the oracle) prints, byte for byte:
 * the JSON summary, --raw, --config, --config --raw and --format, on oci:, dir:, oci-archive:,
 * docker-archive:, a multi-arch index (the list's digest, this platform's instance) and a
 * registry (with RepoTags listed from it, and --no-tags). --signatures adds layerpipe's
 * policy verdict after skopeo's fields. list-tags prints what skopeo list-tags prints.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildRealArchives, type RealArchives } from '../harness/archive-fixtures';
import { makeLayer, writeDirImage, writeImageBlobs, writeIndexBlob, writeLayoutIndex, writeOciImage } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { pushImage, pushMultiArch, skopeoRegistryFlags } from '../harness/registry-images';
import { registrySuiteSkip } from '../harness/registry-tools';

const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'layerpipe');
const FORMAT = '{{.Name}}|{{.Digest}} {{.RepoTags}} {{.Created}} {{.DockerVersion}} {{.Labels}} {{.Labels.a}} {{.Env}} {{.Layers}} {{.Os}}/{{.Architecture}} {{- .Tag -}} end';

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(program: string, args: readonly string[]): Run {
  const r = spawnSync(program, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the same inspect with skopeo and layerpipe; both must succeed with the same stdout. */
function assertSameAsSkopeo(global: readonly string[], args: readonly string[]): string {
  const theirs = run('skopeo', [...global, 'inspect', ...args]);
  assert.equal(theirs.status, 0, `skopeo ${args.join(' ')}: ${theirs.stderr}`);
  const ours = run(BIN, ['inspect', ...global, ...args]);
  assert.equal(ours.status, 0, `layerpipe ${args.join(' ')}: ${ours.stderr}`);
  assert.equal(ours.stdout, theirs.stdout, `inspect ${[...global, ...args].join(' ')}`);
  return ours.stdout;
}

function assertAllOutputsSame(image: string, flags: readonly string[] = [], global: readonly string[] = []): void {
  for (const extra of [[], ['--raw'], ['--config'], ['--config', '--raw'], ['--format', FORMAT]]) {
    assertSameAsSkopeo(global, [...extra, ...flags, image]);
  }
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-cli-inspect-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('inspect: local transports, equal to skopeo inspect', () => {
  const layer = makeLayer({ 'a.txt': 'a\n' });
  const other = makeLayer({ 'b.txt': 'b\n' });
  let archives: RealArchives;
  before(() => {
    writeOciImage(path.join(tmp, 'oci'), { layers: [layer, other], runtimeConfig: { Env: ['A=1', 'PATH=/bin'], Labels: { z: 'last', a: 'first', 'x.y': '<&>' } } });
    writeOciImage(path.join(tmp, 'bare'), { layers: [layer], runtimeConfig: {}, extraConfig: { created: undefined } });
    writeOciImage(path.join(tmp, 'offset'), { layers: [layer], architecture: 'arm64', variant: 'v8', extraConfig: { created: '2024-05-01T10:20:30.100+02:00', docker_version: '20.10.1' } });
    writeDirImage(path.join(tmp, 'dir'), { layers: [layer, other] });
    const multi = path.join(tmp, 'multi');
    const amd = writeImageBlobs(multi, { layers: [layer], architecture: 'amd64' });
    const arm = writeImageBlobs(multi, { layers: [other], architecture: 'arm64', variant: 'v8' });
    const index = writeIndexBlob(multi, [{ manifest: amd, platform: { os: 'linux', architecture: 'amd64' } }, { manifest: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }]);
    writeLayoutIndex(multi, [{ manifest: index, refName: 'latest' }]);
    archives = buildRealArchives();
  });
  after(() => rmSync(archives.dir, { recursive: true, force: true }));

  it('oci: (labels sorted and escaped as Go escapes them), a config with no date, labels or env, and a time offset', () => {
    assertAllOutputsSame(`oci:${tmp}/oci:latest`);
    const out = JSON.parse(assertSameAsSkopeo([], [`oci:${tmp}/bare`])) as Record<string, unknown>;
    assert.equal(out.Created, null);
    assertAllOutputsSame(`oci:${tmp}/offset`);
  });

  it('dir:', () => {
    assertAllOutputsSame(`dir:${tmp}/dir`);
  });

  it('a multi-arch index: the list digest, and the instance for this platform or --override-arch', () => {
    const out = JSON.parse(assertSameAsSkopeo([], [`oci:${tmp}/multi:latest`])) as { Digest: string; Architecture: string };
    assert.equal(out.Architecture, 'amd64');
    assertAllOutputsSame(`oci:${tmp}/multi:latest`, [], ['--override-arch', 'arm64']);
    assertAllOutputsSame(`oci:${tmp}/multi:latest`);
  });

  it('oci-archive: and docker-archive: (Name only where a NAME:TAG names the image)', () => {
    for (const ref of [`oci-archive:${archives.ociSingle}`, `oci-archive:${archives.ociMulti}:v2`, `docker-archive:${archives.dockerSingle}`,
      `docker-archive:${archives.dockerMulti}:@1`, `docker-archive:${archives.dockerMulti}:example.com/team/app:v1`]) {
      assertAllOutputsSame(ref);
    }
  });

  it('--format: text/template fields only; anything else is refused before the image is read', () => {
    const image = `oci:${tmp}/oci:latest`;
    assert.equal(run(BIN, ['inspect', '-f', '{{.Os}}', image]).stdout, 'linux\n');
    assert.equal(run(BIN, ['inspect', '--format', '{{json .Labels}}', image]).stdout, '{"a":"first","x.y":"\\u003c\\u0026\\u003e","z":"last"}\n');
    for (const format of ['{{.Nope}}', '{{if .Os}}x{{end}}', '{{.Os | upper}}', '{{.Os']) {
      const r = run(BIN, ['inspect', '--format', format, `oci:${tmp}/missing`]);
      assert.equal(r.status, 2, format);
      assert.match(r.stderr, /--format: /, format);
    }
    const raw = run(BIN, ['inspect', '--raw', '--format', '{{.Os}}', image]);
    assert.equal(raw.status, 2);
    assert.match(raw.stderr, /raw output does not support format option/);
  });

  it('reads no policy, as skopeo inspect; --signatures adds the verdict and honours the policy', () => {
    const reject = path.join(tmp, 'reject.json');
    writeFileSync(reject, '{"default": [{"type": "reject"}]}');
    const image = `oci:${tmp}/oci:latest`;
    const plain = run(BIN, ['inspect', '--policy', reject, image]);
    assert.equal(plain.status, 0, plain.stderr);
    const refused = run(BIN, ['inspect', '--signatures', '--policy', reject, image]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /is rejected by policy/);
    const report = JSON.parse(refused.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(report), ['Digest', 'Signatures', 'Policy']);
    assert.equal((report.Policy as { verdict: string }).verdict, 'rejected');
    const accepted = run(BIN, ['inspect', '--signatures', '--insecure-policy', image]);
    assert.equal(accepted.status, 0, accepted.stderr);
    const full = JSON.parse(accepted.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(full), ['Digest', 'RepoTags', 'Created', 'DockerVersion', 'Labels', 'Architecture', 'Os', 'Layers', 'Env', 'Signatures', 'Policy']);
    assert.deepEqual(full.Policy, { verdict: 'accepted', scope: 'default' });
  });
});

const skip = registrySuiteSkip();

describe('inspect: a registry, equal to skopeo inspect', { skip, timeout: 180_000 }, () => {
  let registry: RunningRegistry;
  let flags: string[];
  before(async () => {
    registry = await startRegistry();
    flags = skopeoRegistryFlags(registry, '');
    const layer = makeLayer({ 'r.txt': 'registry\n' });
    await pushImage(registry, 'app/one:v1', { layers: [layer] });
    await pushImage(registry, 'app/one:v2', { layers: [layer], runtimeConfig: { Labels: { v: '2' } } }, { format: 'v2s2' });
    await pushMultiArch(registry, 'app/multi:latest', [
      { platform: { os: 'linux', architecture: 'amd64' }, spec: { layers: [layer] } },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, spec: { layers: [makeLayer({ 'arm.txt': 'arm\n' })] } },
    ]);
  });
  after(async () => registry?.stop());

  it('an OCI and a Docker schema 2 image: Name, RepoTags from the registry, and every output form', () => {
    for (const ref of [registry.ref('app/one:v1'), registry.ref('app/one:v2')]) {
      assertAllOutputsSame(ref, flags);
      const out = JSON.parse(assertSameAsSkopeo([], [...flags, ref])) as { Name: string; RepoTags: string[] };
      assert.equal(out.Name, `${registry.host}/app/one`);
      assert.deepEqual([...out.RepoTags].sort(), ['v1', 'v2']);
      const noTags = JSON.parse(assertSameAsSkopeo([], ['-n', ...flags, ref])) as { RepoTags: string[] };
      assert.deepEqual(noTags.RepoTags, []);
    }
  });

  it('list-tags prints what skopeo list-tags prints', () => {
    const repo = registry.ref('app/one');
    const theirs = run('skopeo', ['list-tags', ...flags, repo]);
    assert.equal(theirs.status, 0, theirs.stderr);
    const ours = run(BIN, ['list-tags', ...flags, repo]);
    assert.equal(ours.status, 0, ours.stderr);
    assert.deepEqual(JSON.parse(ours.stdout), JSON.parse(theirs.stdout));
    assert.equal(ours.stdout, theirs.stdout);
  });

  it('a multi-arch list: the list digest and this platform', () => {
    assertAllOutputsSame(registry.ref('app/multi:latest'), flags);
    assertAllOutputsSame(registry.ref('app/multi:latest'), flags, ['--override-arch', 'arm64']);
  });
});
