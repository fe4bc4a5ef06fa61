/**
 * Each method of protocol/methods.ts implemented once, for every wire: typed arguments in, a
 * value (and for byte-returning methods a body) out, under the request's lifetime.
 */
import { ImageNotFoundError } from '../../protocol/errors';
import { METHODS, PROTOCOL_VERSION, SENTINEL_IMAGE_ID, type ArgsOf, type MethodName } from '../../protocol/methods';
import { BlobVerifier, parseDigest } from '../image/digest';
import { bytesBody } from '../transfer/body';
import type { Lifetime } from './lifetime';
import type { MethodResult, Session } from './session';

type Implementation<K extends MethodName> = (session: Session, args: ArgsOf<(typeof METHODS)[K]>, request: Lifetime) => Promise<MethodResult>;

const valueOnly = (value: unknown): MethodResult => ({ value });

async function openImage(session: Session, name: string, signal: AbortSignal, optional: boolean): Promise<MethodResult> {
  try {
    return valueOnly(await session.openImage(name, signal));
  } catch (err) {
    if (optional && err instanceof ImageNotFoundError) return valueOnly(SENTINEL_IMAGE_ID);
    throw err;
  }
}

async function config(session: Session, id: number, which: 'full' | 'runtime'): Promise<MethodResult> {
  const { image, lifetime } = session.image(id);
  const bytes = which === 'full' ? await image.ociConfig() : await image.runtimeConfig();
  return { value: null, pending: { body: bytesBody(bytes, 'config'), owner: lifetime.signal } };
}

export const METHOD_IMPLEMENTATIONS: { readonly [K in MethodName]: Implementation<K> } = {
  Initialize: async (session) => {
    session.markInitialized();
    return valueOnly(PROTOCOL_VERSION);
  },
  OpenImage: (session, [name], request) => openImage(session, name, request.signal, false),
  OpenImageOptional: (session, [name], request) => openImage(session, name, request.signal, true),
  CloseImage: async (session, [id]) => {
    await session.closeImage(id);
    return valueOnly(null);
  },
  GetManifest: async (session, [id]) => {
    const { image, lifetime } = session.image(id);
    const bytes = await image.ociManifest();
    return { value: image.manifestDigest, pending: { body: bytesBody(bytes, 'manifest'), owner: lifetime.signal } };
  },
  GetFullConfig: (session, [id]) => config(session, id, 'full'),
  GetConfig: (session, [id]) => config(session, id, 'runtime'),
  GetBlob: async (session, [id, digest, size]) => {
    const { image, lifetime } = session.image(id);
    const parsed = parseDigest(digest);
    const blob = await image.openBlob({ digest, size, signal: lifetime.signal });
    const body = { stream: blob.stream, size, verifier: new BlobVerifier(parsed, size), what: `blob ${digest}` };
    return { value: blob.size, pending: { body, owner: lifetime.signal } };
  },
  GetRawBlob: async (session, [id, digest]) => {
    const { image, lifetime } = session.image(id);
    parseDigest(digest);
    const blob = await image.openBlob({ digest, size: -1, signal: lifetime.signal });
    const body = { stream: blob.stream, size: blob.size, verifier: undefined, what: `blob ${digest}` };
    return { value: blob.size, pending: { body, owner: lifetime.signal } };
  },
  GetLayerInfo: async (session, [id]) => valueOnly(session.image(id).image.layerInfos()),
  GetLayerInfoPiped: async (session, [id]) => {
    const { image, lifetime } = session.image(id);
    const bytes = Buffer.from(JSON.stringify(image.layerInfos()));
    return { value: null, pending: { body: bytesBody(bytes, 'layer info'), owner: lifetime.signal } };
  },
  FinishPipe: async (session, [pipeid]) => {
    await session.finishTransfer(pipeid);
    return valueOnly(null);
  },
  Shutdown: async () => ({ value: null, endSession: true }),
};
