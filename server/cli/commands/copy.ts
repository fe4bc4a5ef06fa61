/**
 * `layerpipe copy SRC DEST`: SRC is any image name layerpipe reads; DEST is oci:DIR[:REF],
 * dir:DIR or oci-archive:FILE[:REF]. Progress goes to stderr: bars on a terminal, one line per
 * event otherwise, nothing with --quiet. SIGINT/SIGTERM stop the copy; what it had verified
 * stays for the next run, and the destination still names its previous image.
 */
import { writeFile } from 'node:fs/promises';
import { CancelledError } from '../../../protocol/errors';
import { copyImage, type CopyEvents } from '../../copy/copy-image';
import { barProgress, lineProgress, quietProgress } from '../../copy/progress';
import { createLogger } from '../../log';
import { loadPolicy } from '../../policy/load';
import { ResourcePool } from '../../service/resources';
import { parseFlags, systemContextFrom, UsageError, type ProxyOptions } from '../flags';

function progressFor(options: ProxyOptions): CopyEvents {
  if (options.copy.quiet) return quietProgress();
  const out = { write: (text: string) => void process.stderr.write(text), isTTY: process.stderr.isTTY, columns: process.stderr.columns };
  return process.stderr.isTTY ? barProgress(out) : lineProgress(out);
}

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('copy', argv);
  if (positionals.length !== 2) throw new UsageError('copy takes exactly two arguments: SOURCE-IMAGE DESTINATION-IMAGE');
  const [source, destination] = positionals as [string, string];
  const policy = await loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy });
  const log = createLogger(options.debug);
  const resources = new ResourcePool();
  const stop = new AbortController();
  const onSignal = (): void => stop.abort(new CancelledError('copy interrupted: run it again to continue where it stopped'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await copyImage(source, destination, systemContextFrom(options, log, resources, policy), {
      all: options.copy.all,
      preserveDigests: options.copy.preserveDigests,
      removeSignatures: options.copy.removeSignatures,
    }, progressFor(options), stop.signal);
    log.debug(`copy: ${result.blobs} blobs, ${result.skippedBlobs} already present, ${result.fetchedBytes} blob bytes fetched; manifest ${result.manifestDigest}`);
    if (options.copy.digestFile !== undefined) await writeFile(options.copy.digestFile, result.manifestDigest);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await resources.close();
  }
  return 0;
}
