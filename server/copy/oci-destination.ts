/**
 * Publishing a copy as an OCI image layout (oci:DIR[:REF]) or as one inside a tar file
 * (oci-archive:FILE[:REF]). Manifests go in as blobs, then index.json replaces the old one in
 * one rename. An archive is built from a staging layout beside it (kept across an interrupted
 * copy, so blobs fetched are not fetched again) and renamed over FILE when whole.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Pack } from 'tar-stream';
import { UnsupportedError } from '../../protocol/errors';
import { MAX_MANIFEST_SIZE, MediaTypes, parseManifestList } from '../image/manifest';
import type { Descriptor } from '../image/types';
import { placeBytes, writeFileAtomically } from './blob-file';
import { layoutBlobFile } from './paths';
import { layoutIndexBytes } from './oci-json';
import type { CopyPlan } from './plan';

const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** The oci-layout file, byte for byte as skopeo writes it. */
const OCI_LAYOUT_BYTES = '{"imageLayoutVersion": "1.0.0"}';

/** Where an archive's layout is assembled: beside FILE, so the final rename stays on one file system. */
export function stagingDirFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.layerpipe-staging`);
}

async function existingEntries(dir: string): Promise<Descriptor[]> {
  let bytes: Buffer;
  try {
    const handle = await open(path.join(dir, 'index.json'), 'r');
    try {
      if ((await handle.stat()).size > MAX_MANIFEST_SIZE) throw new UnsupportedError(`${dir}/index.json is larger than ${MAX_MANIFEST_SIZE} bytes`);
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return [...parseManifestList(bytes, MediaTypes.ociIndex).manifests];
}

/**
 * index.json's entries with `added` put in as containers/image does: the ref name moves to the
 * new entry, and an unnamed entry of the same digest is replaced rather than repeated.
 */
function withEntry(entries: Descriptor[], added: Descriptor): Descriptor[] {
  const out = entries.map((e) => ({ ...e }));
  const name = added.annotations?.[REF_NAME_ANNOTATION];
  if (name !== undefined) {
    const holder = out.find((e) => e.annotations?.[REF_NAME_ANNOTATION] === name);
    if (holder?.annotations !== undefined) {
      const { [REF_NAME_ANNOTATION]: _dropped, ...rest } = holder.annotations;
      holder.annotations = rest;
    }
  }
  const same = out.findIndex((e) => e.digest === added.digest && (e.annotations?.[REF_NAME_ANNOTATION] ?? '') === '');
  if (same >= 0) out[same] = added;
  else out.push(added);
  return out;
}

/** Writes the manifests into the layout at `dir`, then its index.json (the publishing rename). */
export async function publishOciLayout(dir: string, ref: string, plan: CopyPlan, opts: { keepOtherEntries: boolean }): Promise<void> {
  for (const m of [...plan.instances, plan.top]) await placeBytes(layoutBlobFile(dir, m.digest), m.bytes, m.digest);
  const layoutFile = path.join(dir, 'oci-layout');
  if (!(await lstat(layoutFile).then(() => true, () => false))) await writeFileAtomically(layoutFile, OCI_LAYOUT_BYTES);
  const entry: Descriptor = { mediaType: plan.top.mediaType, digest: plan.top.digest, size: plan.top.bytes.length };
  if (ref !== '') entry.annotations = { [REF_NAME_ANNOTATION]: ref };
  const entries = opts.keepOtherEntries ? await existingEntries(dir) : [];
  await writeFileAtomically(path.join(dir, 'index.json'), layoutIndexBytes(withEntry(entries, entry)));
}

/** Files under `root`, directories first and each level sorted, as a tree walk lists them. */
async function walk(root: string, rel = ''): Promise<{ rel: string; dir: boolean }[]> {
  const out: { rel: string; dir: boolean }[] = [];
  const names = (await readdir(path.join(root, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const d of names) {
    const child = rel === '' ? d.name : `${rel}/${d.name}`;
    if (d.isDirectory()) out.push({ rel: child, dir: true }, ...(await walk(root, child)));
    else if (d.isFile()) out.push({ rel: child, dir: false });
  }
  return out;
}

async function addFile(archive: Pack, name: string, file: string): Promise<void> {
  const size = (await lstat(file)).size;
  const entry = archive.entry({ name, size, mode: 0o644, mtime: new Date(0) });
  await pipeline(createReadStream(file), entry);
}

/** Tars the staging layout's published files (no partial blob) into `out`. */
async function packLayout(staging: string, out: string, referenced: ReadonlySet<string>): Promise<void> {
  // tar-stream loads for oci-archive: only, not with every copy.
  const { pack } = require('tar-stream') as typeof import('tar-stream');
  const archive = pack();
  const written = pipeline(archive, createWriteStream(out, { mode: 0o644 }));
  try {
    for (const f of await walk(staging)) {
      if (f.dir) archive.entry({ name: `${f.rel}/`, type: 'directory', mode: 0o755, mtime: new Date(0) });
      else if (referenced.has(f.rel)) await addFile(archive, f.rel, path.join(staging, f.rel));
    }
    archive.finalize();
  } catch (err) {
    archive.destroy(err as Error);
  }
  await written;
  const handle = await open(out, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The layout files of `plan` relative to the layout root. */
function referencedFiles(plan: CopyPlan, root: string): Set<string> {
  const files = new Set(['oci-layout', 'index.json']);
  for (const digest of [...plan.blobs.map((b) => b.digest), ...plan.instances.map((m) => m.digest), plan.top.digest]) {
    files.add(path.relative(root, layoutBlobFile(root, digest)));
  }
  return files;
}

/**
 * Writes the archive: a fresh layout (as skopeo, the archive holds this image only), tarred to
 * a temporary file renamed over FILE; the staging layout is removed once the archive is in place.
 */
export async function publishOciArchive(file: string, staging: string, ref: string, plan: CopyPlan): Promise<void> {
  await mkdir(staging, { recursive: true });
  await publishOciLayout(staging, ref, plan, { keepOtherEntries: false });
  const temp = `${file}.layerpipe-${process.pid}.tmp`;
  try {
    await packLayout(staging, temp, referencedFiles(plan, staging));
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await rm(staging, { recursive: true, force: true });
}
