/** `layerpipe inspect IMAGE`: skopeo inspect's output (server/cli/inspect.ts), and its --raw, --config and --format. */
import { PolicyDeniedError } from '../../../protocol/errors';
import { openAndJudge } from '../../image/open';
import type { SystemContext } from '../../image/types';
import { UnparsedImage } from '../../image/unparsed';
import { createLogger } from '../../log';
import { ACCEPT_ANYTHING, loadPolicy } from '../../policy/load';
import { ResourcePool } from '../../service/resources';
import { parseImageName } from '../../transports/all';
import { parseFlags, systemContextFrom, UsageError, type InspectFlags } from '../flags';
import { goJsonIndent, goJsonPrint } from '../go-json';
import { parseGoTemplate, renderGoTemplate, type TemplatePart } from '../go-template';
import { inspectOutput, isOutputField, outputField, outputJson, refusedJson, signatureReport } from '../inspect';

/** skopeo's format values that mean "the JSON output". */
function isJsonFormat(format: string | undefined): boolean {
  return format === undefined || format === '' || format === 'json' || /^\{\{\s*json\s+\.\s*\}\}$/.test(format);
}

/** Combinations skopeo refuses, and those of layerpipe's --signatures that would mean nothing. */
function checkFlags(flags: InspectFlags): TemplatePart[] | undefined {
  if (flags.raw && flags.format !== undefined) throw new UsageError('raw output does not support format option');
  if (flags.signatures && (flags.raw || flags.config || flags.format !== undefined)) throw new UsageError('--signatures goes with the JSON summary only, not with --raw, --config or --format');
  if (isJsonFormat(flags.format)) return undefined;
  if (flags.config) throw new UsageError('--format with --config is not supported: layerpipe formats the summary only');
  return parseGoTemplate(flags.format!, isOutputField);
}

async function printRawManifest(name: string, ctx: SystemContext, signal: AbortSignal): Promise<void> {
  const source = await parseImageName(name).newImageSource(ctx, signal);
  try {
    process.stdout.write((await UnparsedImage.read(source, signal)).manifest.bytes);
  } finally {
    await source.close();
  }
}

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('inspect', argv);
  if (positionals.length !== 1) throw new UsageError('Exactly one argument expected: IMAGE');
  const flags = options.inspect;
  const template = checkFlags(flags);
  // skopeo's inspect reads no policy; --signatures is where layerpipe's policy check comes in.
  const policy = flags.signatures ? await loadPolicy({ path: options.policyPath, insecure: options.insecurePolicy }) : ACCEPT_ANYTHING;
  const resources = new ResourcePool();
  const signal = new AbortController().signal;
  try {
    const ctx = systemContextFrom(options, createLogger(options.debug, { showRetries: true }), resources, policy);
    if (flags.raw && !flags.config) {
      await printRawManifest(positionals[0]!, ctx, signal);
      return 0;
    }
    const judged = await openAndJudge(parseImageName(positionals[0]!), ctx, signal);
    try {
      if (judged.image === undefined) {
        // Only with --signatures: the refused image is shown as far as it was read, then fails.
        process.stdout.write(goJsonPrint(refusedJson(judged.unparsed, await signatureReport(judged.unparsed, ctx, judged.verdict))));
        throw new PolicyDeniedError(judged.refusal);
      }
      const image = judged.image;
      if (flags.config) {
        process.stdout.write(flags.raw ? await image.storedConfig() : `${goJsonIndent((await image.ociConfig()).toString('utf8'))}\n`);
        return 0;
      }
      const out = await inspectOutput(image, ctx, !flags.noTags, signal);
      if (template !== undefined) {
        process.stdout.write(renderGoTemplate(template, (path) => outputField(out, path)));
        return 0;
      }
      const extra = flags.signatures ? await signatureReport(judged.unparsed, ctx, judged.verdict) : undefined;
      process.stdout.write(goJsonPrint(outputJson(out, extra)));
    } finally {
      await judged.unparsed.source.close();
    }
  } finally {
    await resources.close();
  }
  return 0;
}
