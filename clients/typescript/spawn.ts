/**
 * Starting `layerpipe` (or `skopeo`) `experimental-image-proxy` as a child process with one
 * end of a SOCK_SEQPACKET socketpair as its fd 0, or at fd N with `--sockfd N`, and watching
 * it: stderr, exit status, and a kill when it will not exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { ProxyClosedError } from './errors';
import { closeFds } from './pipes';
import { SeqpacketChannel, seqpacketPair, type SocketPeer } from './seqpacket-channel';
import type { PeerProcess } from './channel';

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

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** The child process behind a SeqpacketChannel. */
class ProxyProcess implements PeerProcess, SocketPeer {
  readonly started: Promise<void>;
  private readonly exited: Promise<void>;
  private stderrChunks: Buffer[] = [];
  private stderrBytes = 0;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private spawnError: Error | null = null;

  constructor(
    readonly command: string,
    readonly args: readonly string[],
    private readonly child: ChildProcess,
    private readonly exitTimeoutMs: number,
  ) {
    this.started = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    this.started.catch(() => {});
    child.on('error', (err) => {
      this.spawnError ??= err;
    });
    child.on('exit', (code, signal) => {
      this.exitStatus = { code, signal };
    });
    this.exited = new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      this.started.catch(() => resolve());
    });
    child.stderr?.on('data', (chunk: Buffer) => this.collectStderr(chunk));
  }

  get process(): PeerProcess {
    return this;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get stderr(): string {
    return Buffer.concat(this.stderrChunks).toString('utf8');
  }

  get exitCode(): number | null {
    return this.exitStatus?.code ?? null;
  }

  get exitSignal(): NodeJS.Signals | null {
    return this.exitStatus?.signal ?? null;
  }

  async waitExit(): Promise<number | null> {
    await this.exited;
    return this.exitCode;
  }

  async reap(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.exitStatus === null) this.child.kill('SIGKILL');
        resolve();
      }, this.exitTimeoutMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    await this.exited;
  }

  async describeExit(): Promise<string> {
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
}

/**
 * Runs the proxy on a fresh socketpair and returns our end as a Channel once the child has
 * started; rejects with ProxyClosedError when the program cannot be run.
 */
export async function spawnProxyChannel(options: ImageProxyOptions = {}): Promise<SeqpacketChannel> {
  const command = options.command ?? defaultProxyCommand();
  const sockfd = options.sockfd ?? 0;
  if (!Number.isSafeInteger(sockfd) || sockfd < 0 || sockfd === 1 || sockfd === 2) {
    throw new RangeError(`sockfd must be 0 or at least 3, not ${sockfd}`);
  }
  const args = ['experimental-image-proxy', ...(sockfd === 0 ? [] : ['--sockfd', String(sockfd)]), ...(options.args ?? [])];

  const [ours, theirs] = seqpacketPair();
  // Node dup2()s `theirs` onto the child's fd `sockfd`; the copy there is not close-on-exec.
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', 'pipe'];
  for (let i = 3; i <= sockfd; i++) stdio.push('ignore');
  stdio[sockfd] = theirs;
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio, env: options.env ?? process.env });
  } catch (err) {
    closeFds([ours, theirs]);
    throw err;
  }
  // Only the child may hold its end, so that its exit shows here as end of stream.
  closeFds([theirs]);

  const peer = new ProxyProcess(command, args, child, options.exitTimeoutMs ?? 10_000);
  let channel: SeqpacketChannel;
  try {
    channel = new SeqpacketChannel(ours, { peer, maxPacketSize: options.maxReplySize ?? DEFAULT_MAX_REPLY_SIZE });
  } catch (err) {
    closeFds([ours]); // the child then reads end of stream and exits
    throw err;
  }
  try {
    await peer.started;
  } catch (err) {
    channel.close();
    throw new ProxyClosedError(`cannot start ${command}: ${(err as Error).message}`, { cause: err });
  }
  return channel;
}
