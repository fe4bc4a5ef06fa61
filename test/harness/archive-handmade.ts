/**
 * Hand-made archive contents, as lists of tar entries that tests then spoil: a valid OCI layout
 * (from oci-builder.ts) and a valid `docker save` archive in the legacy per-layer layout
 * (ID/layer.tar, ID/json, ID/VERSION, repositories, manifest.json, CONFIG.json).
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packTar, tempDir, type TarSpec } from './archive-fixtures';
import { configFor, sha256, tarOf, writeOciImage, type ImageSpec, type WrittenManifest } from './oci-builder';

/** Every file of a directory as tar entries, parents first. */
export function directoryEntries(dir: string, prefix = ''): TarSpec[] {
  const out: TarSpec[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    const rel = `${prefix}${name}`;
    if (statSync(full).isDirectory()) out.push({ name: `${rel}/`, type: 'directory' }, ...directoryEntries(full, `${rel}/`));
    else out.push({ name: rel, data: readFileSync(full) });
  }
  return out;
}

export interface HandmadeOci {
  readonly entries: TarSpec[];
  readonly manifest: WrittenManifest;
  readonly layerDigests: string[];
}

export function ociLayoutEntries(spec: ImageSpec): HandmadeOci {
  const dir = tempDir('oci-entries');
  const manifest = writeOciImage(dir, spec, 'latest');
  return { entries: directoryEntries(dir), manifest, layerDigests: spec.layers.map((l) => l.digest) };
}

export interface DockerSaveOptions {
  /** Layer tars, stored as given (uncompressed unless a test compresses them). */
  readonly layerTars: readonly Buffer[];
  /** diff IDs for the config; default the sha256 of each uncompressed tar. */
  readonly diffIds?: readonly string[];
  readonly repoTags?: readonly string[];
}

export interface HandmadeDocker {
  readonly entries: TarSpec[];
  /** manifest.json as an object, for tests to edit before packing. */
  readonly items: { Config: string; RepoTags: string[]; Layers: string[] }[];
  readonly config: Buffer;
}

/** The legacy `docker save` layout: one directory per layer, named by a made-up layer ID. */
export function dockerSaveEntries(opts: DockerSaveOptions): HandmadeDocker {
  const diffIds = opts.diffIds ?? opts.layerTars.map((t) => sha256(t));
  const config = configFor({ layers: diffIds.map((diffId) => ({ diffId, digest: diffId, compressed: Buffer.alloc(0), files: {} })) });
  const configName = `${sha256(config).slice(7)}.json`;
  const entries: TarSpec[] = [];
  const layerPaths: string[] = [];
  opts.layerTars.forEach((tar, i) => {
    const id = sha256(`layer ${i}`).slice(7);
    entries.push(
      { name: `${id}/`, type: 'directory' },
      { name: `${id}/VERSION`, data: '1.0' },
      { name: `${id}/json`, data: JSON.stringify({ id }) },
      { name: `${id}/layer.tar`, data: tar },
    );
    layerPaths.push(`${id}/layer.tar`);
  });
  const repoTags = [...(opts.repoTags ?? ['example.com/handmade:v1'])];
  entries.push({ name: configName, data: config }, { name: 'repositories', data: '{}' });
  return { entries, items: [{ Config: configName, RepoTags: repoTags, Layers: layerPaths }], config };
}

/** Packs entries (plus manifest.json from `items` when given) into DIR/NAME and returns its path. */
export async function writeArchive(dir: string, name: string, entries: readonly TarSpec[], items?: unknown): Promise<string> {
  const all = items === undefined ? entries : [...entries, { name: 'manifest.json', data: JSON.stringify(items) }];
  const file = path.join(dir, name);
  writeFileSync(file, await packTar(all));
  return file;
}

export const smallLayers = (): Buffer[] => [tarOf({ 'a.txt': 'first layer\n' }), tarOf({ 'b/c.txt': 'second layer\n'.repeat(100) })];
