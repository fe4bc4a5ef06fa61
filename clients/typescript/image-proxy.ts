/**
 * A client for the skopeo image-proxy wire (protocol 0.2.x): spawns `layerpipe` (or
 * `skopeo`) `experimental-image-proxy` on one end of a SOCK_SEQPACKET socketpair and calls it.
 *
 * The wire has no request ids: replies come in request order, so pending calls wait in a
 * FIFO and several may be in flight at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import {
  compareVersions, METHODS, type AnyMethod, type ArgsOf, type LayerInfo, type ValueOf,
} from '../../protocol/methods';
import { native } from '../../protocol/seqpacket/native';
import { SeqpacketSocket, type Packet } from '../../protocol/seqpacket/socket';
import { ProxyClosedError, ProxyError, ProxyProtocolError, ProxyVersionError } from './errors';
import { pipeReadable, readAll } from './pipes';
import { checkDataKind, checkValue, decodeReply, isSupportedVersion, parseLayerInfo, parseRawBlobError } from './reply';
import type {
  BlobTransfer, CallResult, ManifestResult, OciContainerConfig, OciImageConfig, RawBlobTransfer, RawReply,
} from './types';

export interface ImageProxyOptions {
  /** Program to run; default: this package's bin/layerpipe. `skopeo` works too. */
  command?: string;
  /** Flags after `experimental-image-proxy` (e.g. `--insecure-policy`, `--debug`). */
  args?: readonly string[];
  /** The child's fd number for the socket: 0 (stdin, the default) or 3 and up (adds `--sockfd N`). */
  sockfd?: number;
  env?: NodeJS.ProcessEnv;
  /** Longest reply packet accepted; default 256 KiB (GetLayerInfo may exceed the wire's 32 KiB). */
  maxReplySize?: number;
  /** close()/shutdown() kill the child with SIGKILL if it has not exited after this long. Default 10 s. */
  exitTimeoutMs?: number;
}

/** This package's bin/layerpipe (this file is compiled to dist/clients/typescript/). */
export function defaultProxyCommand(): string {
  return path.resolve(__dirname, '..', '..', '..', 'bin', 'layerpipe');
}

const DEFAULT_MAX_REPLY_SIZE = 256 * 1024;
const STDERR_LIMIT = 64 * 1024;
/** After the socket ends, how long to wait for the exit status to put it in the error message. */
const EXIT_GRACE_MS = 2000;

interface PendingReply {
  onPacket(packet: Packet): void;
  fail(err: Error): void;
}

function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      // already closed
    }
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export class ImageProxy {
  readonly command: string;
  readonly args: readonly string[];
  private readonly child: ChildProcess;
  private readonly socket: SeqpacketSocket;
  private readonly maxReplySize: number;
  private readonly exitTimeoutMs: number;
  private readonly pending: PendingReply[] = [];
  private readonly started: Promise<void>;
  private readonly exited: Promise<void>;
  private stderrChunks: Buffer[] = [];
  private stderrBytes = 0;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private spawnError: Error | null = null;
  private protocolVersion: string | null = null;
  /** Set once the proxy can answer no more; every pending and later call fails with it. */
  private gone: Promise<Error> | null = null;
  /** Settles when the last request sent so far has been answered (or failed). */
  private lastSettled: Promise<void> = Promise.resolve();

  /** Starts the proxy; rejects with ProxyClosedError when the program cannot be run. */
  static async spawn(options: ImageProxyOptions = {}): Promise<ImageProxy> {
    const proxy = new ImageProxy(options);
    try {
      await proxy.started;
    } catch (err) {
      const error = new ProxyClosedError(`cannot start ${proxy.command}: ${(err as Error).message}`, { cause: err });
      proxy.goneWith(() => error);
      throw error;
    }
    return proxy;
  }

  private constructor(options: ImageProxyOptions) {
    this.command = options.command ?? defaultProxyCommand();
    this.maxReplySize = options.maxReplySize ?? DEFAULT_MAX_REPLY_SIZE;
    this.exitTimeoutMs = options.exitTimeoutMs ?? 10_000;
    const sockfd = options.sockfd ?? 0;
    if (!Number.isSafeInteger(sockfd) || sockfd < 0 || sockfd === 1 || sockfd === 2) {
      throw new RangeError(`sockfd must be 0 or at least 3, not ${sockfd}`);
    }
    this.args = ['experimental-image-proxy', ...(sockfd === 0 ? [] : ['--sockfd', String(sockfd)]), ...(options.args ?? [])];

    const [ours, theirs] = native.seqpacketPair();
    // Node dup2()s `theirs` onto the child's fd `sockfd`; the copy there is not close-on-exec.
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', 'pipe'];
    for (let i = 3; i <= sockfd; i++) stdio.push('ignore');
    stdio[sockfd] = theirs;
    try {
      this.child = spawn(this.command, this.args, { stdio, env: options.env ?? process.env });
    } catch (err) {
      closeFds([ours, theirs]);
      throw err;
    }
    // Only the child may hold its end, so that its exit shows here as end of stream.
    closeFds([theirs]);

    this.started = new Promise<void>((resolve, reject) => {
      this.child.once('spawn', resolve);
      this.child.once('error', reject);
    });
    this.started.catch(() => {});
    this.child.on('error', (err) => {
      this.spawnError ??= err;
    });
    this.child.on('exit', (code, signal) => {
      this.exitStatus = { code, signal };
    });
    this.exited = new Promise<void>((resolve) => {
      this.child.once('close', () => resolve());
      this.started.catch(() => resolve());
    });
    this.child.stderr?.on('data', (chunk: Buffer) => this.collectStderr(chunk));

    this.socket = new SeqpacketSocket(ours, { maxPacketSize: this.maxReplySize });
    this.socket.on('packet', (packet) => this.onPacket(packet));
    this.socket.on('end', () => this.goneWith(async () => new ProxyClosedError(await this.describeExit())));
    this.socket.on('error', (err) => this.goneWith(() => new ProxyClosedError(`socket to ${this.command} failed: ${err.message}`, { cause: err })));
  }

  /** Protocol version answered by Initialize, or null before. */
  get version(): string | null {
    return this.protocolVersion;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** What the proxy wrote on stderr (the last 64 KiB of it). */
  get stderr(): string {
    return Buffer.concat(this.stderrChunks).toString('utf8');
  }

  /** Exit status once the proxy has exited; null while it runs or when a signal ended it. */
  get exitCode(): number | null {
    return this.exitStatus?.code ?? null;
  }

  get exitSignal(): NodeJS.Signals | null {
    return this.exitStatus?.signal ?? null;
  }

  /** Waits for the proxy to exit; its exit status (null when killed by a signal). */
  async waitExit(): Promise<number | null> {
    await this.exited;
    return this.exitCode;
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
      if (packet.truncated) throw new ProxyProtocolError(`${method.name}: reply longer than ${this.maxReplySize} bytes`);
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
   * Waits for the calls in flight, sends Shutdown (no reply comes), closes the socket and
   * waits for the proxy to exit: its exit status (0 expected).
   */
  async shutdown(): Promise<number | null> {
    if (this.gone === null) {
      await this.lastSettled;
      try {
        await this.socket.send(Buffer.from(JSON.stringify({ method: METHODS.Shutdown.name, args: [] })), []);
      } catch {
        // The proxy is already gone: its exit status tells the rest.
      }
      this.goneWith(() => new ProxyClosedError(`${this.command} was shut down`));
    }
    return this.reap();
  }

  /** Closes the socket (the proxy exits at end of stream); pending calls fail. Its exit status. */
  async close(): Promise<number | null> {
    this.goneWith(() => new ProxyClosedError(`connection to ${this.command} closed by the client`));
    return this.reap();
  }

  private async invoke<M extends AnyMethod>(method: M, args: ArgsOf<M>): Promise<CallResult<ValueOf<M>>> {
    if (this.protocolVersion === null) throw new ProxyVersionError(`${method.name}: call initialize() first`);
    return this.call(method, args);
  }

  private request(data: Buffer, fds: readonly number[]): Promise<Packet> {
    if (this.gone !== null) {
      closeFds(fds);
      return this.gone.then((err) => Promise.reject(err));
    }
    const reply = new Promise<Packet>((resolve, reject) => {
      const entry: PendingReply = { onPacket: resolve, fail: reject };
      this.pending.push(entry);
      this.socket.send(data, fds).catch((err: Error & { code?: string }) => {
        if (err.code === 'EMSGSIZE') {
          // Only this packet was refused: no reply will come for it.
          this.pending.splice(this.pending.indexOf(entry), 1);
          reject(new ProxyProtocolError(`request of ${data.length} bytes is too large for the socket`, { cause: err }));
        } else {
          this.goneWith(async () => new ProxyClosedError(`cannot send to ${this.command}: ${err.message}; ${await this.describeExit()}`, { cause: err }));
        }
      });
    });
    this.lastSettled = reply.then(() => {}, () => {});
    return reply;
  }

  private onPacket(packet: Packet): void {
    const entry = this.pending.shift();
    if (entry === undefined) {
      closeFds(packet.fds);
      this.goneWith(() => new ProxyProtocolError(`${this.command} sent a reply with no request pending`));
      return;
    }
    entry.onPacket(packet);
  }

  /** From now on every call fails with the error `reason` makes; the socket closes once it is known. */
  private goneWith(reason: () => Error | Promise<Error>): void {
    if (this.gone !== null) return;
    this.gone = Promise.resolve().then(reason);
    void this.gone.then((err) => {
      this.socket.close();
      for (const entry of this.pending.splice(0)) entry.fail(err);
    });
  }

  /** Waits for the proxy to exit after the socket closed; kills it if it takes too long. */
  private async reap(): Promise<number | null> {
    await this.gone;
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.exitStatus === null) this.child.kill('SIGKILL');
        resolve();
      }, this.exitTimeoutMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.waitExit();
  }

  private async describeExit(): Promise<string> {
    await Promise.race([this.exited, delay(EXIT_GRACE_MS)]);
    let what: string;
    if (this.spawnError !== null) what = `cannot run ${this.command}: ${this.spawnError.message}`;
    else if (this.exitStatus === null) what = `${this.command} closed its socket`;
    else if (this.exitStatus.signal !== null) what = `${this.command} was killed by ${this.exitStatus.signal}`;
    else what = `${this.command} exited with status ${this.exitStatus.code}`;
    const stderr = this.stderr.trim();
    return stderr === '' ? what : `${what}: ${stderr.length > 2000 ? `…${stderr.slice(-2000)}` : stderr}`;
  }

  private collectStderr(chunk: Buffer): void {
    this.stderrChunks.push(chunk);
    this.stderrBytes += chunk.length;
    while (this.stderrBytes > STDERR_LIMIT && this.stderrChunks.length > 1) this.stderrBytes -= this.stderrChunks.shift()!.length;
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

