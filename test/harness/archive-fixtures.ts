/**
 * Archives for the oci-archive: and docker-archive: tests. Real ones are written by real
 * tools: skopeo copies test images (oci-builder.ts) into oci-archive: and docker-archive:
 * files; GNU tar packs a multi-image OCI layout and a multi-image `docker save` archive merged
 * from two skopeo-written ones (skopeo writes one image per docker-archive); gzip compresses
 * them. Hostile ones are packed entry by entry with tar-stream.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pack } from 'tar-stream';
import { OpenedImage } from '../../server/image/image';
import { openImageByName } from '../../server/image/open';
import type { SystemContext } from '../../server/image/types';
import { neverAborted, testContext } from './context';
import { makeLayer, randomLayer, writeImageBlobs, writeLayoutIndex, type ImageSpec, type WrittenManifest } from './oci-builder';

export function run(program: string, args: readonly string[]): string {
  return execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function skopeo(args: readonly string[]): string {
  return run('skopeo', ['--insecure-policy', ...args]);
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `layerpipe-${prefix}-`));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The images the real archives hold: different layers, platforms and configs. */
export const IMAGE_SPECS: Readonly<Record<'first' | 'second', ImageSpec>> = {
  first: {
    layers: [makeLayer({ 'etc/motd': 'hello\n', 'usr/share/doc/a': 'a'.repeat(3000) }), randomLayer(150 * 1024)],
    runtimeConfig: { Env: ['PATH=/usr/bin:/bin'], Entrypoint: ['/bin/app'], Labels: { html: '<b>&amp;</b>', z: '1', a: '2' }, WorkingDir: '/srv' },
  },
  second: { layers: [makeLayer({ 'b.txt': 'second image\n' })], architecture: 'arm64', variant: 'v8' },
};

export interface RealArchives {
  readonly dir: string;
  /** oci-archive with one image, ref "v1" (skopeo copy … oci-archive:F:v1). */
  readonly ociSingle: string;
  /** GNU tar of an OCI layout holding refs "v1" and "v2" (names start with "./"). */
  readonly ociMulti: string;
  /** docker-archive with one image tagged example.com/team/app:v1 and busybox:latest. */
  readonly dockerSingle: string;
  /** docker save format with two images (@0 example.com/team/app:v1, @1 localhost/second:2). */
  readonly dockerMulti: string;
  /** gzip of ociMulti and of dockerMulti. */
  readonly ociMultiGz: string;
  readonly dockerMultiGz: string;
  readonly manifests: Readonly<Record<'first' | 'second', WrittenManifest>>;
}

/** Merges `docker save` archives into one, as `docker save a b` would write it, with GNU tar. */
export function mergeDockerArchives(out: string, inputs: readonly string[], work: string): void {
  const merged = path.join(work, 'merged');
  mkdirSync(merged, { recursive: true });
  const items: unknown[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const input of inputs) {
    run('tar', ['-xf', input, '-C', merged]);
    items.push(...(JSON.parse(readFileSync(path.join(merged, 'manifest.json'), 'utf8')) as unknown[]));
    const repos = JSON.parse(readFileSync(path.join(merged, 'repositories'), 'utf8')) as Record<string, Record<string, string>>;
    for (const [repo, tags] of Object.entries(repos)) repositories[repo] = { ...repositories[repo], ...tags };
  }
  writeFileSync(path.join(merged, 'manifest.json'), JSON.stringify(items));
  writeFileSync(path.join(merged, 'repositories'), JSON.stringify(repositories));
  run('tar', ['-cf', out, '-C', merged, '--sort=name', '.']);
}

export function buildRealArchives(): RealArchives {
  const dir = tempDir('archives');
  const layout = path.join(dir, 'layout');
  const first = writeImageBlobs(layout, IMAGE_SPECS.first);
  const second = writeImageBlobs(layout, IMAGE_SPECS.second);
  writeLayoutIndex(layout, [{ manifest: first, refName: 'v1' }, { manifest: second, refName: 'v2' }]);

  const ociSingle = path.join(dir, 'single.oci.tar');
  skopeo(['copy', '-q', `oci:${layout}:v1`, `oci-archive:${ociSingle}:v1`]);
  const copied = path.join(dir, 'copied-layout');
  skopeo(['copy', '-q', `oci:${layout}:v1`, `oci:${copied}:v1`]);
  skopeo(['copy', '-q', `oci:${layout}:v2`, `oci:${copied}:v2`]);
  const ociMulti = path.join(dir, 'multi.oci.tar');
  run('tar', ['-cf', ociMulti, '-C', copied, '.']);

  const dockerSingle = path.join(dir, 'single.docker.tar');
  skopeo(['copy', '-q', '--additional-tag', 'busybox:latest', `oci:${layout}:v1`, `docker-archive:${dockerSingle}:example.com/team/app:v1`]);
  const dockerSecond = path.join(dir, 'second.docker.tar');
  skopeo(['copy', '-q', `oci:${layout}:v2`, `docker-archive:${dockerSecond}:localhost/second:2`]);
  const dockerMulti = path.join(dir, 'multi.docker.tar');
  mergeDockerArchives(dockerMulti, [dockerSingle, dockerSecond], path.join(dir, 'merge'));

  for (const f of [ociMulti, dockerMulti]) run('gzip', ['-k', '-6', f]);
  return {
    dir, ociSingle, ociMulti, dockerSingle, dockerMulti, ociMultiGz: `${ociMulti}.gz`, dockerMultiGz: `${dockerMulti}.gz`,
    manifests: { first, second },
  };
}

/** One entry of a hand-packed tar. */
export interface TarSpec {
  readonly name: string;
  readonly type?: 'file' | 'directory' | 'symlink' | 'link';
  readonly linkname?: string;
  readonly data?: Buffer | string;
}

/** Packs entries with tar-stream (pax headers for long names). */
export async function packTar(entries: readonly TarSpec[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', () => resolve());
    p.on('error', reject);
  });
  for (const e of entries) {
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data);
    const type = e.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      const header = { name: e.name, type, size: type === 'file' ? data.length : 0, mode: 0o644, mtime: new Date(0), ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) };
      const callback = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file') p.entry(header, data, callback);
      else p.entry(header, callback);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Opens an image the way a session does; the caller closes it. */
export async function openInProcess(name: string, ctx: SystemContext = testContext()): Promise<OpenedImage> {
  return openImageByName(name, ctx, neverAborted());
}

/** The error `promise` rejects with (fails the test if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    const value = await promise;
    if (value instanceof OpenedImage) await value.close();
  } catch (err) {
    if (err instanceof Error) return err;
    throw err;
  }
  throw new Error('expected a failure, but it succeeded');
}
