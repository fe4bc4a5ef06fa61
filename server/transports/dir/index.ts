/**
 * The dir: transport: "dir:DIR" as `skopeo copy` writes it — manifest.json, one file per blob
 * named by its hex digest, instances of a list as HEX.manifest.json.
 */
import { EXPECTED, openingAs } from '../local/expected';
import { BlobNotFoundError, InvalidArgumentError, systemCode, UnsupportedError } from '../../../protocol/errors';
import { parseDigest } from '../../image/digest';
import { MAX_MANIFEST_SIZE } from '../../image/manifest';
import { MAX_SIGNATURE_SIZE, readNumberedSignatures, signatureFromStoredBlob, tooLargeSignature, type ImageSignature } from '../../image/signatures';
import type { BlobReader, BlobRequest, ImageReference, ImageSource, RawManifest, SystemContext, Transport } from '../../image/types';
import { ConfinedDirectory } from '../local/confined-dir';
import { LocalPathReference, parentDirectories } from '../local/policy-scope';

/** Blob file name: the bare hex for sha256 (skopeo's convention), ALG-HEX otherwise. */
function blobFileName(digest: string): string {
  const d = parseDigest(digest);
  return d.algorithm === 'sha256' ? d.hex : `${d.algorithm}-${d.hex}`;
}

class DirImageSource implements ImageSource {
  constructor(
    readonly reference: DirReference,
    /** Open from OpenImage to CloseImage: every file is opened beneath it. */
    private readonly files: ConfinedDirectory,
  ) {}

  async getManifest(instanceDigest: string | undefined, _signal: AbortSignal): Promise<RawManifest> {
    if (instanceDigest !== undefined) return { bytes: await this.files.read(`${blobFileName(instanceDigest)}.manifest.json`, MAX_MANIFEST_SIZE), mediaType: '' };
    return { bytes: await openingAs(EXPECTED.dir, () => this.files.read('manifest.json', MAX_MANIFEST_SIZE)), mediaType: '' };
  }

  async getBlob(request: BlobRequest): Promise<BlobReader> {
    return this.files.open(blobFileName(request.digest), request.range);
  }

  /** signature-N for the top-level manifest, HEX.signature-N for an instance, as skopeo writes them. */
  async getSignatures(instanceDigest: string | undefined, _signal: AbortSignal): Promise<ImageSignature[]> {
    const prefix = instanceDigest === undefined ? '' : `${parseDigest(instanceDigest).hex}.`;
    const blobs = await readNumberedSignatures(this.reference.toString(), async (index) => {
      try {
        return await this.files.read(`${prefix}signature-${index}`, MAX_SIGNATURE_SIZE);
      } catch (err) {
        if (err instanceof BlobNotFoundError && systemCode(err.cause) === 'ENOENT') return undefined;
        if (err instanceof UnsupportedError) throw tooLargeSignature(this.reference.toString());
        throw err;
      }
    });
    return blobs.map((blob, i) => signatureFromStoredBlob(blob, `${this.reference.toString()} signature-${i + 1}`));
  }

  close(): Promise<void> {
    return this.files.close();
  }
}

/** The policy scope is the directory; its parents (not the directory again, unlike oci:) are the namespaces. */
class DirReference extends LocalPathReference implements ImageReference {
  constructor(readonly transport: Transport, readonly dir: string) {
    super(dir, parentDirectories);
  }

  override toString(): string {
    return `dir:${this.dir}`;
  }
  async newImageSource(_ctx: SystemContext, _signal: AbortSignal): Promise<ImageSource> {
    return new DirImageSource(this, await openingAs(EXPECTED.dir, () => ConfinedDirectory.open(this.dir)));
  }
}

export const dirTransport: Transport = {
  name: 'dir',
  parseReference(reference: string): ImageReference {
    if (reference === '') throw new InvalidArgumentError('Invalid dir reference: empty path');
    return new DirReference(dirTransport, reference);
  },
};
