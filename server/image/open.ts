/**
 * The one way to open an image, for every caller (the proxy's sessions, `layerpipe inspect`,
 * the tests): a reference opens its source, the top-level manifest is read as an
 * UnparsedImage, the signature policy (ctx.policy) judges it, and only an accepted image is
 * resolved (a list's instance chosen) into an OpenedImage.
 */
import { PolicyDeniedError } from '../../protocol/errors';
import { evaluatePolicy, type PolicyVerdict } from '../policy/evaluate';
import { parseImageName } from '../transports/all';
import { OpenedImage } from './image';
import type { ImageReference, SystemContext } from './types';
import { UnparsedImage } from './unparsed';

/** An image read and judged. A refused image is not resolved: `image` is then undefined. */
export type JudgedImage =
  | { readonly unparsed: UnparsedImage; readonly verdict: PolicyVerdict; readonly image: OpenedImage; readonly refusal: undefined }
  | { readonly unparsed: UnparsedImage; readonly verdict: PolicyVerdict; readonly image: undefined; readonly refusal: string };

/**
 * Opens the image `reference` names and judges it, returning a refusal instead of throwing it,
 * for reports that show why (inspect). The caller closes the source (`unparsed.source`, which
 * `image.close()` also closes). On any other failure the source is closed before the error is thrown.
 */
export async function openAndJudge(reference: ImageReference, ctx: SystemContext, signal: AbortSignal): Promise<JudgedImage> {
  const source = await reference.newImageSource(ctx, signal);
  try {
    const unparsed = await UnparsedImage.read(source, signal);
    const verdict = await evaluatePolicy(ctx.policy, unparsed, ctx.log);
    // Nothing of a refused image is resolved, let alone served.
    if (verdict.refusal !== undefined) return { unparsed, verdict, image: undefined, refusal: verdict.refusal };
    return { unparsed, verdict, image: await OpenedImage.resolve(unparsed, ctx, signal), refusal: undefined };
  } catch (err) {
    await source.close();
    throw err;
  }
}

/**
 * Opens the image `reference` names; PolicyDeniedError when the policy refuses it. `signal`
 * aborts the opening and is the image's lifetime: reads the image makes later for itself (its
 * config, its signatures) follow it too. On failure the source is closed before the error is thrown.
 */
export async function openImage(reference: ImageReference, ctx: SystemContext, signal: AbortSignal): Promise<OpenedImage> {
  const judged = await openAndJudge(reference, ctx, signal);
  if (judged.image !== undefined) return judged.image;
  await judged.unparsed.source.close();
  throw new PolicyDeniedError(judged.refusal);
}

/** openImage for a "TRANSPORT:REFERENCE" name; a malformed name rejects the promise like any other failure. */
export async function openImageByName(name: string, ctx: SystemContext, signal: AbortSignal): Promise<OpenedImage> {
  return openImage(parseImageName(name), ctx, signal);
}
