/**
 * Protocol 1.0's methods implemented once, for every 1.0 wire (SEQPACKET, stdio, the unix
 * service, WebSocket). Params arrive checked against PARAMS_1; a method returning bytes gives a
 * pending body and its value's `size`, and the wire adds the transfer id (and FIFO path) once it
 * has chosen the sink. Initialize and Shutdown belong to the wire (they set up and end it).
 */
import { ImageNotFoundError, UnsupportedError } from '../../protocol/errors';
import type { Method1, ParamsOf1, ResultOf1 } from '../../protocol/jsonrpc';
import { BlobVerifier, parseDigest } from '../image/digest';
import { openImageByName } from '../image/open';
import type { PendingBody, Session } from './session';

export type ServiceMethod1 = Exclude<Method1, 'Initialize' | 'Shutdown'>;

/** A transfer method's value before the wire has delivered it. */
export interface PendingTransfer {
  readonly size: number;
  readonly pending: PendingBody;
  /** GetBlob with `progress: true`. */
  readonly progress: boolean;
}

type Value1<M extends ServiceMethod1> = M extends 'GetBlob' | 'GetRawBlob' ? PendingTransfer : ResultOf1<M>;
type Implementation1<M extends ServiceMethod1> = (session: Session, params: ParamsOf1<M>, signal: AbortSignal) => Promise<Value1<M>>;

const base64 = (bytes: Buffer): string => bytes.toString('base64');

async function openImage(session: Session, name: string, signal: AbortSignal): Promise<number> {
  const lifetime = session.newImageLifetime();
  const onRequestAbort = (): void => lifetime.end(signal.reason);
  signal.addEventListener('abort', onRequestAbort, { once: true });
  try {
    const image = await openImageByName(name, session.ctx, lifetime.signal);
    return session.addImage(image, lifetime);
  } catch (err) {
    lifetime.end(err);
    throw err;
  } finally {
    signal.removeEventListener('abort', onRequestAbort);
  }
}

const notYet = (what: string): never => {
  throw new UnsupportedError(`${what} is not implemented yet`);
};

export const METHOD_IMPLEMENTATIONS_1: { readonly [M in ServiceMethod1]: Implementation1<M> } = {
  OpenImage: async (session, { reference }, signal) => ({ image: await openImage(session, reference, signal) }),
  OpenImageOptional: async (session, { reference }, signal) => {
    try {
      return { image: await openImage(session, reference, signal) };
    } catch (err) {
      if (err instanceof ImageNotFoundError) return { image: null };
      throw err;
    }
  },
  CloseImage: async (session, { image }) => {
    await session.closeImage(image);
    return null;
  },
  GetManifest: async (session, { image: id, raw, platform }) => {
    if (raw === true || platform !== undefined) return notYet('GetManifest raw/platform');
    const { image } = session.image(id);
    const bytes = await image.ociManifest();
    // TODO(methods-1): digest of the converted bytes when converted, mediaType from the bytes.
    return { digest: image.manifestDigest, mediaType: 'application/vnd.oci.image.manifest.v1+json', data: base64(bytes) };
  },
  ListInstances: async () => notYet('ListInstances'),
  ListTags: async () => notYet('ListTags'),
  GetFullConfig: async (session, { image: id }) => {
    const { image } = session.image(id);
    const bytes = await image.ociConfig();
    return { digest: '', data: base64(bytes) }; // TODO(methods-1): digest
  },
  GetConfig: async (session, { image: id }) => ({ data: base64(await session.image(id).image.runtimeConfig()) }),
  GetLayerInfo: async (session, { image: id }) => ({
    layers: session.image(id).image.layerInfos().map((l) => ({ digest: l.digest, size: l.size, mediaType: l.media_type })),
  }),
  GetSignatures: async () => notYet('GetSignatures'),
  GetBlob: async (session, { image: id, digest, size, progress }) => {
    const { image, lifetime } = session.image(id);
    const parsed = parseDigest(digest);
    const expected = size ?? -1; // TODO(methods-1): the manifest's size when omitted
    const blob = await image.openBlob({ digest, size: expected, signal: lifetime.signal });
    const body = { stream: blob.stream, size: expected >= 0 ? expected : blob.size, verifier: new BlobVerifier(parsed, expected), what: `blob ${digest}` };
    return { size: body.size, pending: { body, owner: lifetime.signal }, progress: progress === true };
  },
  GetRawBlob: async (session, { image: id, digest, offset, length }) => {
    if (offset !== undefined || length !== undefined) return notYet('GetRawBlob offset/length');
    const { image, lifetime } = session.image(id);
    parseDigest(digest);
    const blob = await image.openBlob({ digest, size: -1, signal: lifetime.signal });
    const body = { stream: blob.stream, size: blob.size, verifier: undefined, what: `blob ${digest}` };
    return { size: blob.size, pending: { body, owner: lifetime.signal }, progress: false };
  },
  FinishTransfer: async (session, { transfer }) => {
    await session.finishTransfer(transfer);
    return null;
  },
  CancelTransfer: async (session, { transfer }) => {
    await session.cancelTransfer(transfer);
    return null;
  },
};
