/**
 * The one way to open an image, for every caller (the proxy's sessions, `layerpipe inspect`,
 * the tests): a reference opens its source, the top-level manifest is read as an
 * UnparsedImage, and only then is the image resolved (a list's instance chosen) into an
 * OpenedImage. The signature policy (ctx.policy) is checked between those two steps.
 */
import { OpenedImage } from './image';
import type { ImageReference, SystemContext } from './types';
import { UnparsedImage } from './unparsed';
import { parseImageName } from '../transports/all';
import { checkImagePolicy } from '../policy/evaluate';

/**
 * Opens the image `reference` names. `signal` aborts the opening and is the image's lifetime:
 * reads the image makes later for itself (its config) follow it too. On failure the source is
 * closed before the error is thrown.
 */
export async function openImage(reference: ImageReference, ctx: SystemContext, signal: AbortSignal): Promise<OpenedImage> {
  const source = await reference.newImageSource(ctx, signal);
  try {
    const unparsed = await UnparsedImage.read(source, signal);
    // Nothing of a refused image is resolved, let alone served.
    await checkImagePolicy(ctx.policy, unparsed, ctx.log, signal);
    return await OpenedImage.resolve(unparsed, ctx, signal);
  } catch (err) {
    await source.close();
    throw err;
  }
}

/** openImage for a "TRANSPORT:REFERENCE" name; a malformed name rejects the promise like any other failure. */
export async function openImageByName(name: string, ctx: SystemContext, signal: AbortSignal): Promise<OpenedImage> {
  return openImage(parseImageName(name), ctx, signal);
}
