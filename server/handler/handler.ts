/**
 * The proxy's methods, independent of any wire: a wire decodes a request, calls handle(), and
 * encodes the outcome (value, pipe id, fds to pass) or the thrown error.
 */
import { Readable } from 'node:stream';
import { METHODS, PROTOCOL_VERSION, SENTINEL_IMAGE_ID, isMethodName, type ArgsOf, type MethodName } from '../../protocol/methods';
import { ImageNotFoundError, InvalidArgumentError } from '../errors';
import { BlobVerifier, parseDigest } from '../image/digest';
import { OpenedImage } from '../image/image';
import type { SystemContext } from '../image/types';
import { parseImageName } from '../transports/all';
import { checkArguments } from './arguments';
import { TransferTable } from './transfers';

export interface HandlerReply {
  readonly value: unknown;
  readonly pipeid: number;
  /** Read ends to pass to the client; the wire closes them once sent. */
  readonly fds: number[];
}

export type HandlerOutcome = { readonly kind: 'reply'; readonly reply: HandlerReply } | { readonly kind: 'shutdown' };

const noData = (value: unknown): HandlerReply => ({ value, pipeid: 0, fds: [] });

export class ProxyHandler {
  private initialized = false;
  private readonly images = new Map<number, OpenedImage>();
  private nextImageId = 0;
  private readonly transfers = new TransferTable();

  constructor(private readonly ctx: SystemContext) {}

  /** Runs one request. Throws (LayerpipeError or system errors) for an error reply. */
  async handle(method: string, args: readonly unknown[]): Promise<HandlerOutcome> {
    if (!isMethodName(method)) throw new InvalidArgumentError(`unknown method: ${method}`);
    if (method === 'Shutdown') return { kind: 'shutdown' };
    if (method !== 'Initialize' && method !== 'FinishPipe' && !this.initialized) {
      throw new InvalidArgumentError('client error: must invoke Initialize');
    }
    return { kind: 'reply', reply: await this.dispatch(method, args) };
  }

  private dispatch(method: Exclude<MethodName, 'Shutdown'>, args: readonly unknown[]): Promise<HandlerReply> {
    switch (method) {
      case 'Initialize': return this.initialize(checkArguments(METHODS.Initialize, args));
      case 'OpenImage': return this.openImage(checkArguments(METHODS.OpenImage, args), false);
      case 'OpenImageOptional': return this.openImage(checkArguments(METHODS.OpenImageOptional, args), true);
      case 'CloseImage': return this.closeImage(checkArguments(METHODS.CloseImage, args));
      case 'GetManifest': return this.getManifest(checkArguments(METHODS.GetManifest, args));
      case 'GetFullConfig': return this.getConfig(checkArguments(METHODS.GetFullConfig, args), 'full');
      case 'GetConfig': return this.getConfig(checkArguments(METHODS.GetConfig, args), 'runtime');
      case 'GetBlob': return this.getBlob(checkArguments(METHODS.GetBlob, args));
      case 'GetRawBlob': return this.getRawBlob(checkArguments(METHODS.GetRawBlob, args));
      case 'GetLayerInfo': return this.getLayerInfo(checkArguments(METHODS.GetLayerInfo, args), false);
      case 'GetLayerInfoPiped': return this.getLayerInfo(checkArguments(METHODS.GetLayerInfoPiped, args), true);
      case 'FinishPipe': return this.finishPipe(checkArguments(METHODS.FinishPipe, args));
    }
  }

  private async initialize(_args: ArgsOf<typeof METHODS.Initialize>): Promise<HandlerReply> {
    if (this.initialized) throw new InvalidArgumentError('already initialized');
    this.initialized = true;
    return noData(PROTOCOL_VERSION);
  }

  private async openImage([name]: ArgsOf<typeof METHODS.OpenImage>, optional: boolean): Promise<HandlerReply> {
    const reference = parseImageName(name);
    let image: OpenedImage;
    try {
      const source = await reference.newImageSource(this.ctx);
      try {
        image = await OpenedImage.open(source, this.ctx);
      } catch (err) {
        await source.close();
        throw err;
      }
    } catch (err) {
      if (optional && err instanceof ImageNotFoundError) return noData(SENTINEL_IMAGE_ID);
      throw err;
    }
    const id = ++this.nextImageId;
    this.images.set(id, image);
    return noData(id);
  }

  private image(id: number): OpenedImage {
    if (id === 0) throw new InvalidArgumentError('invalid imageid value of zero');
    const image = this.images.get(id);
    if (image === undefined) throw new InvalidArgumentError(`no image ${id}`);
    return image;
  }

  private async closeImage([id]: ArgsOf<typeof METHODS.CloseImage>): Promise<HandlerReply> {
    const image = this.image(id);
    this.images.delete(id);
    await image.close();
    return noData(null);
  }

  private bytesReply(value: unknown, bytes: Buffer, what: string): HandlerReply {
    const { pipeid, fds } = this.transfers.startPiped(Readable.from([bytes]), what);
    return { value, pipeid, fds };
  }

  private async getManifest([id]: ArgsOf<typeof METHODS.GetManifest>): Promise<HandlerReply> {
    const image = this.image(id);
    return this.bytesReply(image.manifestDigest, await image.ociManifest(), 'manifest');
  }

  private async getConfig([id]: ArgsOf<typeof METHODS.GetConfig>, which: 'full' | 'runtime'): Promise<HandlerReply> {
    const image = this.image(id);
    const bytes = which === 'full' ? await image.ociConfig() : await image.runtimeConfig();
    return this.bytesReply(null, bytes, 'config');
  }

  private async getBlob([id, digest, size]: ArgsOf<typeof METHODS.GetBlob>): Promise<HandlerReply> {
    const image = this.image(id);
    const parsed = parseDigest(digest);
    const blob = await image.openBlob({ digest, size });
    const { pipeid, fds } = this.transfers.startPiped(blob.stream, `blob ${digest}`, new BlobVerifier(parsed, size));
    return { value: blob.size, pipeid, fds };
  }

  private async getRawBlob([id, digest]: ArgsOf<typeof METHODS.GetRawBlob>): Promise<HandlerReply> {
    const image = this.image(id);
    parseDigest(digest);
    const blob = await image.openBlob({ digest, size: -1 });
    const { pipeid, fds } = this.transfers.startRaw(blob.stream, `blob ${digest}`);
    return { value: blob.size, pipeid, fds };
  }

  private async getLayerInfo([id]: ArgsOf<typeof METHODS.GetLayerInfo>, piped: boolean): Promise<HandlerReply> {
    const layers = this.image(id).layerInfos();
    if (!piped) return noData(layers);
    return this.bytesReply(null, Buffer.from(JSON.stringify(layers)), 'layer info');
  }

  private async finishPipe([pipeid]: ArgsOf<typeof METHODS.FinishPipe>): Promise<HandlerReply> {
    await this.transfers.finish(pipeid);
    return noData(null);
  }

  /** Closes every open image (on exit). */
  async closeAll(): Promise<void> {
    const images = [...this.images.values()];
    this.images.clear();
    await Promise.allSettled(images.map((i) => i.close()));
  }
}

