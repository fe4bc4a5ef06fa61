/**
 * A client for the skopeo image-proxy wire (protocol 0.2.x), speaking to the proxy through a
 * Channel: by default a SOCK_SEQPACKET socket to a `layerpipe` (or `skopeo`)
 * `experimental-image-proxy` child that spawn.ts starts.
 *
 * The wire has no request ids: replies come in request order, so pending calls wait in a
 * FIFO and several may be in flight at once.
 */
import {
  compareVersions, METHODS, type AnyMethod, type ArgsOf, type LayerInfo, type ValueOf,
} from '../../protocol/methods';
import { PacketRefusedError, type Channel, type ChannelPacket } from './channel';
import { ProxyClosedError, ProxyError, ProxyProtocolError, ProxyVersionError } from './errors';
import { closeFds, pipeReadable, readAll } from './pipes';
import { checkDataKind, checkValue, decodeReply, isSupportedVersion, parseLayerInfo, parseRawBlobError } from './reply';
import { spawnProxyChannel, type ImageProxyOptions } from './spawn';
import type {
  BlobTransfer, CallResult, ManifestResult, OciContainerConfig, OciImageConfig, RawBlobTransfer, RawReply,
} from './types';

export { defaultProxyCommand, type ImageProxyOptions } from './spawn';

interface PendingReply {
  onPacket(packet: ChannelPacket): void;
  fail(err: Error): void;
}

export class ImageProxy {
  /** The proxy program (or, over a channel to no local process, the channel's peer name). */
  readonly command: string;
  /** The program's arguments; empty when the peer is not a process started here. */
  readonly args: readonly string[];
  private readonly pending: PendingReply[] = [];
  /** Settles once the channel is closed, whoever ended it. */
  private readonly channelClosed: Promise<void>;
  private markClosed!: () => void;
  private protocolVersion: string | null = null;
  /** Set once the proxy can answer no more; every pending and later call fails with it. */
  private gone: Promise<Error> | null = null;
  /** Settles when the last request sent so far has been answered (or failed). */
  private lastSettled: Promise<void> = Promise.resolve();

  /** Starts the proxy; rejects with ProxyClosedError when the program cannot be run. */
  static async spawn(options: ImageProxyOptions = {}): Promise<ImageProxy> {
    return new ImageProxy(await spawnProxyChannel(options));
  }

  /** A client over a channel already connected to a proxy; it owns the channel from now on. */
  static connect(channel: Channel): ImageProxy {
    return new ImageProxy(channel);
  }

  private constructor(private readonly channel: Channel) {
    this.command = channel.process?.command ?? channel.peerName;
    this.args = channel.process?.args ?? [];
    this.channelClosed = new Promise<void>((resolve) => {
      this.markClosed = resolve;
    });
    channel.start({
      packet: (packet) => this.onPacket(packet),
      gone: (failure) => this.goneWith(failure === undefined
        ? async () => new ProxyClosedError(await channel.describeGone())
        : () => new ProxyClosedError(`connection to ${this.command} failed: ${failure.message}`, { cause: failure })),
    });
  }

  /** Protocol version answered by Initialize, or null before. */
  get version(): string | null {
    return this.protocolVersion;
  }

  get pid(): number | undefined {
    return this.channel.process?.pid;
  }

  /** What the proxy wrote on stderr (the last 64 KiB of it); empty when it is no local process. */
  get stderr(): string {
    return this.channel.process?.stderr ?? '';
  }

  /** Exit status once the proxy has exited; null while it runs or when a signal ended it. */
  get exitCode(): number | null {
    return this.channel.process?.exitCode ?? null;
  }

  get exitSignal(): NodeJS.Signals | null {
    return this.channel.process?.exitSignal ?? null;
  }

  /**
   * Waits for the proxy to exit; its exit status (null when killed by a signal). A peer that
   * is no local process has no status: null once the channel is closed.
   */
  async waitExit(): Promise<number | null> {
    const process = this.channel.process;
    if (process !== null) return process.waitExit();
    await this.channelClosed;
    return null;
  }

  /** Whether the proxy's version has `method` (false before initialize()). */
  supports(method: AnyMethod): boolean {
    return this.protocolVersion !== null && compareVersions(this.protocolVersion, method.since) >= 0;
  }

  /**
   * One request, its reply checked: success (else ProxyError), fds and pipeid as the method's
   * DataKind says, value of the declared type. The caller owns the returned fds. Once the
   * version is known, methods it lacks are refused here with ProxyVersionError.
   */
  async call<M extends AnyMethod>(method: M, args: ArgsOf<M>): Promise<CallResult<ValueOf<M>>> {
    if (method.data === 'noReply') throw new TypeError(`${method.name} has no reply: use shutdown()`);
    if (this.protocolVersion !== null && !this.supports(method)) {
      throw new ProxyVersionError(`${method.name} needs protocol ${method.since} or later; ${this.command} speaks ${this.protocolVersion}`);
    }
    const packet = await this.request(Buffer.from(JSON.stringify({ method: method.name, args })), []);
    try {
      if (packet.truncated) throw new ProxyProtocolError(`${method.name}: reply longer than ${this.channel.maxPacketSize} bytes`);
      const reply = decodeReply(method.name, packet.data);
      if (!reply.success) throw new ProxyError(method.name, reply.error, reply.errorCode);
      checkDataKind(method, reply.pipeid, packet.fds.length);
      return { value: checkValue(method, reply.value) as ValueOf<M>, fds: packet.fds, pipeid: reply.pipeid };
    } catch (err) {
      closeFds(packet.fds);
      throw err;
    }
  }

  /** Sends `data` as one packet as it is (malformed JSON, oversized...) and returns the next reply unchecked. */
  async sendRaw(data: Buffer, fds: readonly number[] = []): Promise<RawReply> {
    const packet = await this.request(data, fds);
    let json: unknown;
    try {
      json = JSON.parse(packet.data.toString('utf8'));
    } catch {
      json = undefined;
    }
    return { data: packet.data, json, fds: packet.fds, truncated: packet.truncated };
  }

  /** Initialize: checks the version is ^0.2.3 (>= 0.2.3, < 0.3.0) and remembers it. */
  async initialize(): Promise<string> {
    const { value } = await this.call(METHODS.Initialize, []);
    if (!isSupportedVersion(value)) {
      throw new ProxyVersionError(`${this.command} speaks protocol ${value}; this client needs ^0.2.3 (>= 0.2.3, < 0.3.0)`);
    }
    this.protocolVersion = value;
    return value;
  }

  async openImage(imageRef: string): Promise<number> {
    return (await this.invoke(METHODS.OpenImage, [imageRef])).value;
  }

  /** The image id, or null when the image does not exist (other failures throw). */
  async openImageOptional(imageRef: string): Promise<number | null> {
    const { value } = await this.invoke(METHODS.OpenImageOptional, [imageRef]);
    return value === 0 ? null : value;
  }

  async closeImage(imageId: number): Promise<void> {
    await this.invoke(METHODS.CloseImage, [imageId]);
  }

  async getManifest(imageId: number): Promise<ManifestResult> {
    const reply = await this.invoke(METHODS.GetManifest, [imageId]);
    return { digest: reply.value, bytes: await this.readPipe(reply) };
  }

  async getFullConfig(imageId: number): Promise<OciImageConfig> {
    return this.parseObject('GetFullConfig', await this.readPipe(await this.invoke(METHODS.GetFullConfig, [imageId])));
  }

  /** Only the `config` member of the image config. */
  async getConfig(imageId: number): Promise<OciContainerConfig> {
    return this.parseObject('GetConfig', await this.readPipe(await this.invoke(METHODS.GetConfig, [imageId])));
  }

  /** The layers as the image reports them for copying; piped when the proxy can (>= 0.2.7). */
  async getLayerInfo(imageId: number): Promise<LayerInfo[]> {
    if (this.supports(METHODS.GetLayerInfoPiped)) {
      return parseLayerInfo(await this.readPipe(await this.invoke(METHODS.GetLayerInfoPiped, [imageId])));
    }
    return (await this.invoke(METHODS.GetLayerInfo, [imageId])).value;
  }

  /** Starts a blob transfer: see BlobTransfer for how to read it. */
  async getBlob(imageId: number, digest: string, size: number): Promise<BlobTransfer> {
    const reply = await this.invoke(METHODS.GetBlob, [imageId, digest, size]);
    let finishing: Promise<void> | null = null;
    return {
      size: reply.value,
      stream: pipeReadable(reply.fds[0]),
      finish: () => (finishing ??= this.finishPipe(reply.pipeid)),
    };
  }

  /** A blob as it is stored, unverified, with an error pipe instead of FinishPipe (>= 0.2.8). */
  async getRawBlob(imageId: number, digest: string): Promise<RawBlobTransfer> {
    const reply = await this.invoke(METHODS.GetRawBlob, [imageId, digest]);
    const error = readAll(pipeReadable(reply.fds[1])).then(parseRawBlobError);
    error.catch(() => {}); // a caller that never looks at it must not get an unhandled rejection
    return { size: reply.value, stream: pipeReadable(reply.fds[0]), error };
  }

  async finishPipe(pipeid: number): Promise<void> {
    await this.invoke(METHODS.FinishPipe, [pipeid]);
  }

  /**
   * Waits for the calls in flight, sends Shutdown (no reply comes), closes the channel and
   * waits for the proxy to exit: its exit status (0 expected).
   */
  async shutdown(): Promise<number | null> {
    if (this.gone === null) {
      await this.lastSettled;
      try {
        await this.channel.send(Buffer.from(JSON.stringify({ method: METHODS.Shutdown.name, args: [] })));
      } catch {
        // The proxy is already gone: its exit status tells the rest.
      }
      this.goneWith(() => new ProxyClosedError(`${this.command} was shut down`));
    }
    return this.reap();
  }

  /** Closes the channel (the proxy exits at end of stream); pending calls fail. Its exit status. */
  async close(): Promise<number | null> {
    this.goneWith(() => new ProxyClosedError(`connection to ${this.command} closed by the client`));
    return this.reap();
  }

  private async invoke<M extends AnyMethod>(method: M, args: ArgsOf<M>): Promise<CallResult<ValueOf<M>>> {
    if (this.protocolVersion === null) throw new ProxyVersionError(`${method.name}: call initialize() first`);
    return this.call(method, args);
  }

  private request(data: Buffer, fds: readonly number[]): Promise<ChannelPacket> {
    if (this.gone !== null) {
      closeFds(fds);
      return this.gone.then((err) => Promise.reject(err));
    }
    const reply = new Promise<ChannelPacket>((resolve, reject) => {
      const entry: PendingReply = { onPacket: resolve, fail: reject };
      this.pending.push(entry);
      this.channel.send(data, fds).catch((err: Error) => {
        if (err instanceof PacketRefusedError) {
          // Only this packet was refused: no reply will come for it.
          this.pending.splice(this.pending.indexOf(entry), 1);
          reject(new ProxyProtocolError(`request of ${data.length} bytes refused by the channel: ${err.message}`, { cause: err }));
        } else {
          this.goneWith(async () => new ProxyClosedError(`cannot send to ${this.command}: ${err.message}; ${await this.channel.describeGone()}`, { cause: err }));
        }
      });
    });
    this.lastSettled = reply.then(() => {}, () => {});
    return reply;
  }

  private onPacket(packet: ChannelPacket): void {
    const entry = this.pending.shift();
    if (entry === undefined) {
      closeFds(packet.fds);
      this.goneWith(() => new ProxyProtocolError(`${this.command} sent a reply with no request pending`));
      return;
    }
    entry.onPacket(packet);
  }

  /** From now on every call fails with the error `reason` makes; the channel closes once it is known. */
  private goneWith(reason: () => Error | Promise<Error>): void {
    if (this.gone !== null) return;
    this.gone = Promise.resolve().then(reason);
    void this.gone.then((err) => {
      this.channel.close();
      this.markClosed();
      for (const entry of this.pending.splice(0)) entry.fail(err);
    });
  }

  /** Waits for the proxy to exit after the channel closed (the channel kills a lingering one). */
  private async reap(): Promise<number | null> {
    await this.gone;
    await this.channelClosed;
    await this.channel.waitClosed();
    return this.waitExit();
  }

  /** Reads a single-pipe reply's pipe while FinishPipe runs; FinishPipe's error wins. */
  private async readPipe(reply: CallResult<unknown>): Promise<Buffer> {
    const stream = pipeReadable(reply.fds[0]);
    const data = readAll(stream);
    const finished = this.finishPipe(reply.pipeid);
    finished.catch(() => stream.destroy());
    const [read, finish] = await Promise.allSettled([data, finished]);
    if (finish.status === 'rejected') throw finish.reason;
    if (read.status === 'rejected') throw read.reason;
    return read.value;
  }

  private parseObject<T extends object>(method: string, data: Buffer): T {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString('utf8'));
    } catch (err) {
      throw new ProxyProtocolError(`${method}: pipe does not hold JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ProxyProtocolError(`${method}: pipe does not hold a JSON object`);
    }
    return parsed as T;
  }
}

