/**
 * `layerpipe blob IMAGE DIGEST [-o FILE]`: one blob of an image (a layer, the config, any blob
 * the image's source holds), checked against DIGEST as it streams, through the same copy loop
 * as the proxy's GetBlob. To a file it is written as a temporary file beside FILE and renamed
 * only once verified, so FILE is either the whole verified blob or untouched.
 */
import { createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { BlobVerifier, parseDigest } from '../../image/digest';
import { openImage } from '../../image/open';
import { createLogger } from '../../log';
import { loadPolicy } from '../../policy/load';
import { ResourcePool } from '../../service/resources';
import { copyBody } from '../../transfer/copy';
import type { Sink } from '../../transfer/sink';
import { parseImageName } from '../../transports/all';
import { parseFlags, systemContextFrom, UsageError } from '../flags';

/** A sink that writes to `out` and leaves closing it to the caller. */
function streamSink(out: Writable): Sink {
  return { writable: out, describeFailure: (err) => err, close: () => undefined };
}

function closeStream(out: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    out.once('error', reject);
    out.end(() => resolve());
  });
}

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('blob', argv);
  if (positionals.length !== 2) throw new UsageError('blob takes two arguments: IMAGE DIGEST');
  const [name, digest] = positionals as [string, string];
  const parsed = parseDigest(digest);
  // Like the proxy (and unlike inspect), this hands out an image's content: the policy applies.
  const policy = await loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy });
  const resources = new ResourcePool();
  const controller = new AbortController();
  try {
    const ctx = systemContextFrom(options, createLogger(options.debug, { showRetries: true }), resources, policy);
    const image = await openImage(parseImageName(name), ctx, controller.signal);
    try {
      // The size the manifest gives, when it lists the blob; otherwise the digest alone decides.
      const listed = image.layerInfos().find((l) => l.digest === parsed.value);
      const size = listed?.size ?? -1;
      const blob = await image.openBlob({ digest: parsed.value, size, signal: controller.signal });
      const body = { stream: blob.stream, size, verifier: new BlobVerifier(parsed, size), what: `blob ${parsed.value}` };
      if (options.outputPath === undefined) {
        await copyBody(body, streamSink(process.stdout), { signal: controller.signal, guard: undefined });
        return 0;
      }
      await writeAtomically(options.outputPath, (out) => copyBody(body, streamSink(out), { signal: controller.signal, guard: undefined }));
    } finally {
      await image.close();
    }
  } finally {
    controller.abort();
    await resources.close();
  }
  return 0;
}

/** Runs `write` into a new temporary file beside `file`, then renames it over `file`; on failure the temporary file is removed. */
async function writeAtomically(file: string, write: (out: WriteStream) => Promise<void>): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.layerpipe-${process.pid}-${Date.now()}.tmp`);
  // 'wx': never through an existing file or link; flush: the data is on disk before the rename.
  const out = createWriteStream(temp, { flags: 'wx', flush: true });
  out.on('error', () => undefined); // reported through the copy or closeStream
  try {
    await new Promise<void>((resolve, reject) => {
      out.once('open', () => resolve());
      out.once('error', reject);
    });
    await write(out);
    await closeStream(out);
    await fsp.rename(temp, file);
  } catch (err) {
    out.destroy();
    await fsp.rm(temp, { force: true });
    throw err;
  }
}
