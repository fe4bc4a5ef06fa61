/**
 * A TCP proxy that makes a loopback registry look like one across a WAN: each connection is
 * capped at a rate in each direction (a token bucket, as CDNs cap each connection) and every
 * byte is delayed by half the added round trip each way (a delay line, as netem adds latency),
 * so each request waits a round trip for its first byte and a new connection one more before
 * its first request goes out. It works on TCP, below TLS, so it stands in front of plain and
 * TLS registries alike (point the client at host:port of the proxy; the registry's certificate
 * names 127.0.0.1). Used by tests and by bench/slow-link-bench.ts.
 */
import { spawn } from 'node:child_process';
import net, { type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

export interface LinkShape {
  /** Bytes per second per connection and direction; 0 = no cap. */
  readonly bytesPerSecond: number;
  /** Added round-trip time, ms (half each way). */
  readonly rttMs: number;
}

export interface ShapingProxyOptions extends LinkShape {
  readonly target: { readonly host: string; readonly port: number };
}

export interface ShapingProxy {
  /** 127.0.0.1:PORT: use it where the registry's host:port would go. */
  readonly host: string;
  readonly port: number;
  /** The child process's pid (spawnShapingProxy), undefined in-process. */
  readonly pid: number | undefined;
  /** Connections accepted so far. */
  connectionCount(): number;
  /** Most connections open at once so far. */
  peakConnections(): number;
  /** Bytes sent to clients so far. */
  bytesDown(): number;
  /** A proxy in a child process: fetches the counters above (in-process ones are always current). */
  refreshStats(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The proxy waits until it may send this much (or all it holds) and then sends it in one go
 * (corked: one writev): few timers and writes per MB, so that its own CPU does not become the
 * link's limit. 256 KiB is 6.5 ms at 40 MB/s, well under a round trip.
 */
const BATCH_BYTES = 256 * 1024;

/** One direction of one connection: a delay line feeding a token bucket. */
class ShapedDirection {
  private readonly queue: { data: Buffer; due: number }[] = [];
  private queued = 0;
  private tokens: number;
  private refilledAt = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  private sourceEnded = false;
  private readonly burst: number;
  private readonly maxQueued: number;
  sent = 0;

  constructor(private readonly from: Socket, private readonly to: Socket, private readonly shape: LinkShape) {
    // 50 ms of bytes at most in one go: a timer that fires late on a busy machine must not cost rate.
    this.burst = Math.max(64 * 1024, shape.bytesPerSecond / 20);
    this.tokens = this.burst;
    // Room for the bytes in flight on the simulated link (rate x delay) and more: the source is
    // resumed at half of this, and what it sends then is due only after the delay, so half must
    // outlast the delay by a margin (a late wake-up), or the line runs dry and the queue, not the
    // cap, limits.
    this.maxQueued = Math.max(2 * 1024 * 1024, 4 * shape.bytesPerSecond * ((shape.rttMs / 2 + 20) / 1000));
    from.on('data', (data: Buffer) => {
      this.queue.push({ data, due: performance.now() + shape.rttMs / 2 });
      this.queued += data.length;
      if (this.queued >= this.maxQueued) from.pause();
      this.pump();
    });
    from.once('end', () => {
      this.sourceEnded = true;
      this.pump();
    });
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private pump(): void {
    if (this.timer !== undefined || this.waitingDrain || this.to.destroyed) return;
    this.to.cork();
    try {
      this.send();
    } finally {
      this.to.uncork();
    }
  }

  private send(): void {
    let spending = false;
    for (;;) {
      const head = this.queue[0];
      if (head === undefined) {
        if (this.sourceEnded) this.to.end();
        return;
      }
      const now = performance.now();
      if (head.due > now) return this.wait(head.due - now);
      let n = head.data.length;
      if (this.shape.bytesPerSecond > 0) {
        this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * this.shape.bytesPerSecond) / 1000);
        this.refilledAt = now;
        const least = Math.min(this.queued, BATCH_BYTES, this.burst);
        if (!spending && this.tokens < least) return this.wait(((least - this.tokens) * 1000) / this.shape.bytesPerSecond);
        spending = true;
        n = Math.min(n, Math.floor(this.tokens));
        if (n === 0) return this.wait((Math.min(head.data.length, BATCH_BYTES, this.burst) * 1000) / this.shape.bytesPerSecond);
        this.tokens -= n;
      }
      const piece = head.data.subarray(0, n);
      if (n === head.data.length) this.queue.shift();
      else head.data = head.data.subarray(n);
      this.queued -= n;
      this.sent += n;
      if (this.queued < this.maxQueued / 2) this.from.resume();
      if (!this.to.write(piece)) {
        this.waitingDrain = true;
        this.to.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
  }

  private wait(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(1, Math.ceil(ms)));
  }
}

export async function startShapingProxy(options: ShapingProxyOptions): Promise<ShapingProxy> {
  const closers = new Set<() => void>();
  let accepted = 0;
  let open = 0;
  let peak = 0;
  let down = 0;
  const downstreams = new Set<ShapedDirection>();
  // Half-open allowed: an end from one side is passed on after the bytes still on the line.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    peak = Math.max(peak, ++open);
    const upstream = net.connect({ port: options.target.port, host: options.target.host, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // The connection's own round trip (SYN, SYN-ACK) before its first bytes go out.
    client.pause();
    const handshake = setTimeout(() => client.resume(), options.rttMs);
    const up = new ShapedDirection(client, upstream, options);
    const downstream = new ShapedDirection(upstream, client, options);
    downstreams.add(downstream);
    let closed = false;
    const closeBoth = (): void => {
      if (closed) return;
      closed = true;
      open--;
      closers.delete(closeBoth);
      clearTimeout(handshake);
      up.stop();
      downstream.stop();
      downstreams.delete(downstream);
      down += downstream.sent;
      client.destroy();
      upstream.destroy();
    };
    closers.add(closeBoth);
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    // Nobody left to deliver to; the registry's side goes too.
    client.on('close', closeBoth);
    // The registry closed cleanly: what is still on the line is delivered, then the client's side is ended (ShapedDirection).
    upstream.on('close', () => {
      if (client.writableEnded || client.destroyed) closeBoth();
    });
    client.on('finish', () => {
      if (upstream.destroyed) closeBoth();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    port,
    pid: undefined,
    connectionCount: () => accepted,
    peakConnections: () => peak,
    bytesDown: () => {
      let total = down;
      for (const d of downstreams) total += d.sent;
      return total;
    },
    refreshStats: () => Promise.resolve(),
    close: () => new Promise<void>((resolve) => {
      for (const close of [...closers]) close();
      server.close(() => resolve());
    }),
  };
}

/**
 * The same proxy in a child process of its own, so that its copying does not share an event
 * loop (and a core) with the client being measured. The child prints its port, answers
 * "stats" on stdin with a JSON line, and ends when its stdin closes.
 */
export async function spawnShapingProxy(options: ShapingProxyOptions): Promise<ShapingProxy> {
  const child = spawn(process.execPath, [__filename, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const pending: ((line: string) => void)[] = [];
  lines.on('line', (line) => pending.shift()?.(line));
  const nextLine = () => new Promise<string>((resolve, reject) => {
    pending.push(resolve);
    child.once('exit', () => reject(new Error('the shaping proxy exited')));
  });
  const port = Number(await nextLine());
  let stats = { connections: 0, peak: 0, down: 0 };
  const refresh = async (): Promise<void> => {
    const answer = nextLine();
    child.stdin!.write('stats\n');
    stats = JSON.parse(await answer) as typeof stats;
  };
  return {
    host: `127.0.0.1:${port}`,
    port,
    pid: child.pid,
    // Counters as of the last refresh: call refreshStats() before reading them.
    connectionCount: () => stats.connections,
    peakConnections: () => stats.peak,
    bytesDown: () => stats.down,
    refreshStats: refresh,
    close: async () => {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      await exited;
    },
  };
}

if (require.main === module) {
  const options = JSON.parse(process.argv[2] ?? '{}') as ShapingProxyOptions;
  void startShapingProxy(options).then((proxy) => {
    process.stdout.write(`${proxy.port}\n`);
    const input = createInterface({ input: process.stdin });
    input.on('line', () => {
      process.stdout.write(`${JSON.stringify({ connections: proxy.connectionCount(), peak: proxy.peakConnections(), down: proxy.bytesDown() })}\n`);
    });
    input.on('close', () => void proxy.close().then(() => process.exit(0)));
  });
}
