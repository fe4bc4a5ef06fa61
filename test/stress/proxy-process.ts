/**
 * The real bin/layerpipe on one end of a real SOCK_SEQPACKET socketpair, driven at the packet
 * level: the stress tests send arbitrary bytes (and fds), time every reply, and read the
 * process's fd count and RSS from /proc. The TypeScript client would refuse most of what they
 * send, and its FIFO has no timeouts, so this is a thinner driver of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../../protocol/seqpacket/native';
import { SeqpacketSocket, type Packet } from '../../protocol/seqpacket/socket';

/** bin/layerpipe of this checkout (this file is compiled to dist/test/stress/). */
export const LAYERPIPE_BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'layerpipe');

/** Replies are read with room far beyond the wire's 32 KiB, so oversize replies are measured, not cut. */
const RECEIVE_LIMIT = 8 * 1024 * 1024;
const STDERR_LIMIT = 64 * 1024;

export interface StartOptions {
  readonly args?: readonly string[];
  /** Added to a scrubbed environment (see start()). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A request whose reply did not come within its time limit. */
export class ReplyTimeoutError extends Error {
  constructor(readonly ms: number) {
    super(`no reply within ${ms} ms`);
  }
}

/** The proxy closed the connection (it exited or crashed) with replies outstanding. */
export class ProxyGoneError extends Error {}

export function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      // already closed
    }
  }
}

interface Waiter {
  readonly resolve: (packet: Packet) => void;
  readonly reject: (err: Error) => void;
}

/** A reply and how long it took from the send. */
export interface TimedReply {
  readonly packet: Packet;
  readonly ms: number;
}

export class StressProxy {
  /** Working directory of the proxy: a fresh directory whose name must never appear in a reply. */
  readonly cwd: string;
  private readonly child: ChildProcess;
  private readonly socket: SeqpacketSocket;
  /** Requests waiting for their reply, oldest first (the wire is FIFO). */
  private readonly waiters: Waiter[] = [];
  private unsolicitedReplies = 0;
  private stderrText = '';
  private status: ExitStatus | null = null;
  private readonly exitPromise: Promise<ExitStatus>;
  private ended = false;

  /**
   * Spawns `bin/layerpipe experimental-image-proxy --insecure-policy` with the socket as fd 0.
   * The environment is PATH and HOME only (plus `env`), with registries.conf pointed at an empty
   * file, so the machine's registry settings and credentials stay out and no short name reaches
   * a network.
   */
  static async start(options: StartOptions = {}): Promise<StressProxy> {
    const proxy = new StressProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.child.once('spawn', resolve);
      proxy.child.once('error', reject);
    });
    return proxy;
  }

  private constructor(options: StartOptions) {
    this.cwd = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-stress-cwd-'));
    const [ours, theirs] = native.seqpacketPair();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.cwd,
      CONTAINERS_REGISTRIES_CONF: '/dev/null',
      ...options.env,
    };
    try {
      // The fixtures are unsigned and the wire is under test, not the machine's signature policy.
      const args = ['experimental-image-proxy', '--insecure-policy', ...(options.args ?? [])];
      this.child = spawn(process.execPath, [LAYERPIPE_BIN, ...args], {
        stdio: [theirs, 'ignore', 'pipe'], env, cwd: this.cwd,
      });
    } finally {
      closeFds([theirs]); // only the child may hold its end, so its exit shows here as EOF
    }
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrText = (this.stderrText + chunk.toString('utf8')).slice(-STDERR_LIMIT);
    });
    // 'close' rather than 'exit': stderr is complete by then, so a check of it right after is fair.
    this.exitPromise = new Promise<ExitStatus>((resolve) => {
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.status = { code, signal };
        resolve(this.status);
      });
      this.child.once('error', () => resolve({ code: null, signal: null }));
    });
    this.socket = new SeqpacketSocket(ours, { maxPacketSize: RECEIVE_LIMIT });
    this.socket.on('packet', (packet) => this.onPacket(packet));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', () => this.onEnd());
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** The client's end of the socket: tests that bypass the FIFO (floods, raw sends) use it. */
  get clientFd(): number {
    return this.socket.fd;
  }

  get stderr(): string {
    return this.stderrText;
  }

  get exitStatus(): ExitStatus | null {
    return this.status;
  }

  get alive(): boolean {
    return this.status === null && !this.ended;
  }

  /**
   * Stops taking replies off the socket (they pile up in the kernel, then in the proxy), for
   * tests that read the raw fd themselves with native.recvPacket.
   */
  pauseReplies(): void {
    this.socket.pause();
  }

  resumeReplies(): void {
    this.socket.resume();
  }

  /** Replies that answered no request. */
  get unsolicited(): number {
    return this.unsolicitedReplies;
  }

  /** Replies still expected (requests sent, or abandoned by a timeout, and not yet answered). */
  get outstanding(): number {
    return this.waiters.length;
  }

  waitExit(): Promise<ExitStatus> {
    return this.exitPromise;
  }

  /** Sends one packet; resolves with its reply (the caller owns the reply's fds). `fds` pass to the socket. */
  send(data: Buffer, fds: readonly number[] = []): Promise<Packet> {
    const reply = new Promise<Packet>((resolve, reject) => {
      if (this.ended) {
        closeFds(fds);
        reject(new ProxyGoneError('the proxy has closed the connection'));
        return;
      }
      this.waiters.push({ resolve, reject });
      this.socket.send(data, fds).catch((err: Error) => {
        // Only an oversized packet is refused alone; then no reply will come for it.
        const waiter = this.waiters.find((w) => w.resolve === resolve);
        if (waiter !== undefined) this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(err);
      });
    });
    return reply;
  }

  /**
   * Sends one packet and waits at most `timeoutMs` for its reply. On a timeout the request
   * stays in the FIFO: its late reply is taken off the wire when it comes and dropped, so the
   * connection stays in step (late fds are closed).
   */
  async request(data: Buffer, timeoutMs: number, fds: readonly number[] = []): Promise<TimedReply> {
    const started = process.hrtime.bigint();
    const reply = this.send(data, fds);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ReplyTimeoutError(timeoutMs)), timeoutMs);
    });
    try {
      const packet = await Promise.race([reply, timeout]);
      return { packet, ms: Number(process.hrtime.bigint() - started) / 1e6 };
    } catch (err) {
      if (err instanceof ReplyTimeoutError) void reply.then((late) => closeFds(late.fds), () => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** JSON request, as `request` does. */
  call(method: string, args: readonly unknown[], timeoutMs: number): Promise<TimedReply> {
    return this.request(Buffer.from(JSON.stringify({ method, args })), timeoutMs);
  }

  /** Entries of /proc/PID/fd: the descriptors the proxy holds. */
  fdCount(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** What the proxy holds, for leak reports: "pipe:[123]", "socket:[45]", paths. */
  fdTargets(): string[] {
    const dir = `/proc/${this.pid}/fd`;
    const out: string[] = [];
    for (const fd of readdirSync(dir)) {
      try {
        out.push(readlinkSync(path.join(dir, fd)));
      } catch {
        // closed while listing
      }
    }
    return out;
  }

  /** Resident memory in MiB (VmRSS), and its peak so far (VmHWM). */
  memory(): { rssMiB: number; peakMiB: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
  }

  /** Closes the client's end (the proxy should exit 0 at EOF); SIGKILL after `graceMs`. */
  async close(graceMs = 5000): Promise<ExitStatus> {
    this.socket.close();
    this.onEnd();
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exitPromise, killed]);
    clearTimeout(timer);
    const status = await this.exitPromise;
    rmSync(this.cwd, { recursive: true, force: true });
    return status;
  }

  /** SIGKILL (for a proxy stuck on the CPU, which no EOF can reach). */
  async kill(): Promise<ExitStatus> {
    if (this.status === null) this.child.kill('SIGKILL');
    return this.close(5000);
  }

  private onPacket(packet: Packet): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve(packet);
      return;
    }
    // A reply to no request: the proxy answered twice, or answered Shutdown.
    this.unsolicitedReplies++;
    closeFds(packet.fds);
  }

  private onEnd(): void {
    if (this.ended) return;
    this.ended = true;
    const err = new ProxyGoneError('the proxy closed the connection');
    for (const waiter of this.waiters.splice(0)) waiter.reject(err);
  }
}
