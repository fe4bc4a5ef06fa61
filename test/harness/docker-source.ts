/**
 * Helpers for tests of the docker:// transport itself: a SystemContext for a test registry,
 * opening an image through parseImageName + OpenedImage (the path the handler takes), and
 * reading blobs whole.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { OpenedImage } from '../../server/image/image';
import { openImageByName } from '../../server/image/open';
import type { RegistryOptions, SystemContext } from '../../server/image/types';
import { closeTestContext, neverAborted, testContext } from './context';
import { emptyAuthFilePath } from './registry-images';

let emptyConf: string | undefined;

/** A registries.conf with nothing in it, so the machine's own configuration stays out of tests. */
export function emptyRegistriesConf(): string {
  if (emptyConf === undefined) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-regconf-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    emptyConf = path.join(dir, 'registries.conf');
    writeFileSync(emptyConf, '# empty\n');
  }
  return emptyConf;
}

export function contextWith(registry: Partial<RegistryOptions>, extra: Partial<Omit<SystemContext, 'registry' | 'resources'>> = {}): SystemContext {
  return testContext({ ...extra, registry: { authFile: emptyAuthFilePath(), registriesConf: emptyRegistriesConf(), ...registry } });
}

/**
 * The contexts one suite made, closed together (typically in afterEach), so that every test
 * gets registry pools of its own and leaves no connection open behind it.
 */
export class TestContexts {
  private made: SystemContext[] = [];

  /** contextWith, remembered for closeAll(). */
  with(registry: Partial<RegistryOptions>, extra: Partial<Omit<SystemContext, 'registry' | 'resources'>> = {}): SystemContext {
    const ctx = contextWith(registry, extra);
    this.made.push(ctx);
    return ctx;
  }

  async closeAll(): Promise<void> {
    const all = this.made;
    this.made = [];
    await Promise.all(all.map((ctx) => closeTestContext(ctx)));
  }
}

export async function openImage(ref: string, ctx: SystemContext): Promise<OpenedImage> {
  return openImageByName(ref, ctx, neverAborted());
}

export async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A blob of an opened image, whole. */
export async function readBlob(image: OpenedImage, digest: string, size = -1): Promise<{ bytes: Buffer; size: number }> {
  const blob = await image.openBlob({ digest, size, signal: neverAborted() });
  return { bytes: await readStream(blob.stream), size: blob.size };
}

/** Expects a rejection of a given class; returns it for more checks. */
export async function rejection<T extends Error>(promise: Promise<unknown>, cls: new (...args: never[]) => T): Promise<T> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof cls) return err;
    throw new Error(`expected ${cls.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
  throw new Error(`expected ${cls.name}, got success`);
}
