/**
 * Protocol 1.0's methods implemented once, for every 1.0 wire (SEQPACKET, stdio, the unix
 * service, WebSocket). Params arrive checked against PARAMS_1; a method returning bytes gives a
 * pending body and its value's `size`, and the wire adds the transfer id (and FIFO path) once it
 * has chosen the sink. Initialize and Shutdown belong to the wire (they set up and end it).
 */
import { ImageNotFoundError } from '../../protocol/errors';
import type { ManifestResult, Method1, ParamsOf1, Platform, ResultOf1 } from '../../protocol/jsonrpc';
import { BlobVerifier, parseDigest, sha256Digest } from '../image/digest';
import type { ListedInstance, OpenedImage } from '../image/image';
import { MediaTypes } from '../image/manifest';
import { describeSignatures } from '../policy/report';
import { listTagsByName } from '../transports/all';
import type { Lifetime } from './lifetime';
import type { PendingBody, Session } from './session';

export type ServiceMethod1 = Exclude<Method1, 'Initialize' | 'Shutdown'>;

/** A transfer method's value before the wire has delivered it. */
export interface PendingTransfer {
  readonly size: number;
  readonly pending: PendingBody;
  /** GetBlob with `progress: true`. */
  readonly progress: boolean;
}

export type Value1<M extends ServiceMethod1> = M extends 'GetBlob' | 'GetRawBlob' ? PendingTransfer : ResultOf1<M>;
type Implementation1<M extends ServiceMethod1> = (session: Session, params: ParamsOf1<M>, request: Lifetime) => Promise<Value1<M>>;

const base64 = (bytes: Buffer): string => bytes.toString('base64');

/** A list entry's platform as protocol 1.0 shows it: os, architecture and a variant only when there is one. */
function platformOf(p: ListedInstance['platform']): Platform | null {
  if (p === undefined) return null;
  // A list's JSON is not trusted to hold strings where it should.
  const text = (v: unknown): string => (typeof v === 'string' ? v : '');
  const variant = text(p.variant);
  return variant !== '' ? { os: text(p.os), architecture: text(p.architecture), variant } : { os: text(p.os), architecture: text(p.architecture) };
}

/**
 * GetManifest. Without options: the chosen instance converted to OCI, with the digest 0.2.x
 * answers (that of the manifest as stored, as skopeo's proxy does). `raw`: the manifest or
 * index the reference names, exactly as stored. `platform`: that instance of the list, as
 * stored when `raw` is also set, else converted like the default.
 */
async function getManifest(image: OpenedImage, raw: boolean, platform: Platform | undefined, signal: AbortSignal): Promise<ManifestResult> {
  if (platform === undefined && raw) return { digest: image.top.digest, mediaType: image.top.mediaType, data: base64(image.top.bytes) };
  const instance = platform === undefined ? image.chosen : await image.instanceFor(platform, signal);
  if (raw) return { digest: instance.digest, mediaType: instance.mediaType, data: base64(instance.bytes) };
  return { digest: instance.digest, mediaType: MediaTypes.ociManifest, data: base64(await instance.ociManifest()) };
}

export const METHOD_IMPLEMENTATIONS_1: { readonly [M in ServiceMethod1]: Implementation1<M> } = {
  OpenImage: async (session, { reference }, request) => ({ image: await session.openImage(reference, request.signal) }),
  OpenImageOptional: async (session, { reference }, request) => {
    try {
      return { image: await session.openImage(reference, request.signal) };
    } catch (err) {
      if (err instanceof ImageNotFoundError) return { image: null };
      throw err;
    }
  },
  CloseImage: async (session, { image }) => {
    await session.closeImage(image);
    return null;
  },
  GetManifest: async (session, { image: id, raw, platform }, request) => getManifest(session.image(id).image, raw === true, platform, request.signal),
  ListInstances: async (session, { image: id }) => ({
    instances: session.image(id).image.instances().map((i) => ({ digest: i.digest, mediaType: i.mediaType, size: i.size, platform: platformOf(i.platform) })),
  }),
  ListTags: async (session, { reference }, request) => ({ tags: await listTagsByName(reference, session.ctx, request.signal) }),
  GetFullConfig: async (session, { image: id }) => {
    const bytes = await session.image(id).image.ociConfig();
    return { digest: sha256Digest(bytes), data: base64(bytes) };
  },
  GetConfig: async (session, { image: id }) => ({ data: base64(await session.image(id).image.runtimeConfig()) }),
  GetLayerInfo: async (session, { image: id }) => ({
    layers: session.image(id).image.layerInfos().map((l) => ({ digest: l.digest, size: l.size, mediaType: l.media_type })),
  }),
  // Read with the image's lifetime (once per image, shared with the policy check at OpenImage).
  GetSignatures: async (session, { image: id }) => ({ signatures: await describeSignatures(session.ctx.policy, session.image(id).image.unparsed) }),
  GetBlob: async (session, { image: id, digest, size, progress }) => {
    const { image, lifetime } = session.image(id);
    const parsed = parseDigest(digest);
    // No size from the client: the manifest's for that digest; a blob it does not list is still digest-verified.
    const expected = size !== undefined && size >= 0 ? size : ((await image.chosen.listedSize(digest)) ?? -1);
    const blob = await image.openBlob({ digest, size: expected, signal: lifetime.signal });
    const body = { stream: blob.stream, size: expected >= 0 ? expected : blob.size, verifier: new BlobVerifier(parsed, expected), what: `blob ${digest}` };
    return { size: body.size, pending: { body, owner: lifetime.signal }, progress: progress === true };
  },
  GetRawBlob: async (session, { image: id, digest, offset, length }) => {
    const { image, lifetime } = session.image(id);
    parseDigest(digest);
    const range = offset === undefined && length === undefined ? undefined : { offset: offset ?? 0, length };
    const blob = await image.openBlob({ digest, size: -1, signal: lifetime.signal, range });
    const body = { stream: blob.stream, size: blob.size, verifier: undefined, what: range === undefined ? `blob ${digest}` : `blob ${digest} from byte ${range.offset}` };
    return { size: blob.size, pending: { body, owner: lifetime.signal }, progress: false };
  },
  FinishTransfer: async (session, { transfer }) => {
    await session.finishTransfer(transfer, (id) => `no transfer ${id}`);
    return null;
  },
  CancelTransfer: async (session, { transfer }) => {
    await session.cancelTransfer(transfer);
    return null;
  },
};
