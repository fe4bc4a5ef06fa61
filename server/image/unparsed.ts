/**
 * An image as its source names it, before anything about it is trusted: the top-level
 * manifest's bytes, type and digest, and its signatures on request. This is the stage where
 * the signature policy is checked (server/policy/evaluate.ts): open.ts chooses no instance,
 * reads no config and hands out no blob before the policy has accepted it.
 */
import { sha256Digest } from './digest';
import { guessManifestType } from './manifest';
import type { ImageSignature } from './signatures';
import type { ImageReference, ImageSource, RawManifest } from './types';

export class UnparsedImage {
  /** The signatures, fetched at most once for the policy check, GetSignatures and inspect together. */
  private pendingSignatures: Promise<ImageSignature[]> | undefined;

  private constructor(
    readonly source: ImageSource,
    /** The image's lifetime: later reads made for it (its signatures) follow it. */
    private readonly signal: AbortSignal,
    /** The top-level manifest as stored (a list, when the reference names one). */
    readonly manifest: RawManifest,
    readonly manifestType: string,
    readonly manifestDigest: string,
  ) {}

  static async read(source: ImageSource, signal: AbortSignal): Promise<UnparsedImage> {
    const manifest = await source.getManifest(undefined, signal);
    return new UnparsedImage(source, signal, manifest, manifestTypeOf(manifest), sha256Digest(manifest.bytes));
  }

  get reference(): ImageReference {
    return this.source.reference;
  }

  /**
   * The signatures stored for the top-level manifest; none when the transport cannot store any.
   * Read once; a failed read (a lookaside that did not answer) is tried again when next asked.
   */
  signatures(): Promise<ImageSignature[]> {
    if (this.pendingSignatures === undefined) {
      const pending = this.source.getSignatures?.(undefined, this.signal) ?? Promise.resolve([]);
      this.pendingSignatures = pending;
      pending.catch(() => {
        if (this.pendingSignatures === pending) this.pendingSignatures = undefined;
      });
    }
    return this.pendingSignatures;
  }
}

/** A source's declared type wins unless it is generic; the bytes decide otherwise. */
export function manifestTypeOf(m: RawManifest): string {
  if (m.mediaType !== '' && m.mediaType !== 'application/json' && m.mediaType !== 'text/plain') return m.mediaType;
  return guessManifestType(m.bytes);
}
