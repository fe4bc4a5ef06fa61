/**
 * Publishing a copy as a dir: directory, laid out as skopeo writes one: a version file, one
 * file per blob named by its hex digest, a list's instances as HEX.manifest.json, and
 * manifest.json, written last, in one rename. skopeo empties a reused image directory first;
 * here the old image stays readable until manifest.json is replaced (and its blobs can be
 * reused), and the files it alone used are removed after.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError } from '../../protocol/errors';
import { placeBytes, writeFileAtomically } from './blob-file';
import { dirBlobFile } from './paths';
import type { CopyPlan } from './plan';

const VERSION_BYTES = 'Directory Transport Version: 1.1\n';

/** A dir: destination is a new or empty directory, or one that already holds a dir: image. */
export async function checkDirDestination(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info !== undefined) {
    if (!info.isDirectory()) throw new InvalidArgumentError(`dir:${dir}: not a directory`);
    const names = await readdir(dir);
    if (names.length > 0 && !names.includes('version')) {
      throw new InvalidArgumentError(`dir:${dir}: the directory is not empty and holds no dir: image (no version file); refusing to write into it`);
    }
  }
  await writeFileAtomically(path.join(dir, 'version'), VERSION_BYTES);
}

/** Files a dir: image (or an interrupted copy into one) is made of. */
const IMAGE_FILE = /^(?:[0-9a-f]{64}|sha(?:384|512)-[0-9a-f]+)(?:\.manifest\.json|\.layerpipe-partial)?$|^(?:[0-9a-f]{64}\.)?signature-\d+$/;

function manifestFileName(dir: string, digest: string): string {
  return `${dirBlobFile(dir, digest)}.manifest.json`;
}

export async function publishDir(dir: string, plan: CopyPlan): Promise<void> {
  for (const m of plan.instances) await placeBytes(manifestFileName(dir, m.digest), m.bytes, m.digest);
  await writeFileAtomically(path.join(dir, 'manifest.json'), plan.top.bytes);
  const kept = new Set([
    ...plan.blobs.map((b) => path.basename(dirBlobFile(dir, b.digest))),
    ...plan.instances.map((m) => path.basename(manifestFileName(dir, m.digest))),
  ]);
  for (const name of await readdir(dir)) {
    if (IMAGE_FILE.test(name) && !kept.has(name)) await rm(path.join(dir, name), { force: true });
  }
}
