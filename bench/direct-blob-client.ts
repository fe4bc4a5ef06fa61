/**
 * The limits beside the proxy's figures: a plain Node program fetching blobs from a registry
 * with no proxy and no pipe, one of four ways, printing one JSON line: its peak RSS (VmHWM, MiB),
 * and, with --serial, its own CPU-seconds per GB and MB/s.
 *
 *   node dist/bench/direct-blob-client.js [--way WAY] [--serial --repeat N] BLOB-URL…   (each ending in /blobs/sha256:HEX)
 *
 * Ways: `http-hash` (node:http, hashing; the default), `undici-hash` and `undici-read` (undici's
 * request(), as layerpipe's registry client reads a body, hashing or only reading), and
 * `socket-read` (a TCP socket whose reads land in one reused buffer, net's `onread`, no HTTP
 * parser: what any Node program pays to receive the bytes). Hashing ways check each digest,
 * reading ways each Content-Length. Without --serial every blob is fetched at once (memory-bench);
 * with it, the first blob once to warm up, then all of them `repeat` times, one at a time, the
 * CPU counted from after the warm-up as cpu-per-byte-bench counts the proxy's.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { request } from 'undici';

export const WAYS = ['http-hash', 'undici-hash', 'undici-read', 'socket-read'] as const;
export type Way = (typeof WAYS)[number];

/** What the program prints. */
export interface DirectClientResult {
  readonly peakMiB: number;
  /** With --serial only. */
  readonly cpuPerGB?: number;
  readonly mbPerSecond?: number;
}

const digestOf = (url: string): string => url.slice(url.lastIndexOf('/') + 1);

/** Checks what was fetched: the digest when hashed, else the announced length. */
function check(url: string, bytes: number, announced: number, hash: ReturnType<typeof createHash> | undefined): number {
  if (hash !== undefined) {
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== digestOf(url)) throw new Error(`${url}: digest ${got}`);
  } else if (bytes !== announced) {
    throw new Error(`${url}: ${bytes} bytes, Content-Length ${announced}`);
  }
  return bytes;
}

function viaHttp(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode}`));
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve(check(url, bytes, -1, hash));
        } catch (err) {
          reject(err);
        }
      });
    }).on('error', reject);
  });
}

async function viaUndici(url: string, hashing: boolean): Promise<number> {
  const res = await request(url);
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`);
  const hash = hashing ? createHash('sha256') : undefined;
  let bytes = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    hash?.update(chunk);
    bytes += chunk.length;
  }
  return check(url, bytes, Number(res.headers['content-length']), hash);
}

/** One GET over a plain socket whose reads all land in `buffer`; the header is looked for in the first reads. */
function viaSocket(url: string, buffer: Buffer): Promise<number> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    let head = '';
    let announced = -1;
    let bytes = 0;
    const socket = net.connect({
      host: target.hostname,
      port: Number(target.port),
      onread: {
        buffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          if (announced >= 0) {
            bytes += n;
            return true;
          }
          head += Buffer.from(buf.buffer, buf.byteOffset, n).toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return true;
          if (!head.startsWith('HTTP/1.1 200')) reject(new Error(`${url}: ${head.slice(0, head.indexOf('\r\n'))}`));
          announced = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head.slice(0, end))?.[1] ?? -1);
          bytes = head.length - end - 4;
          return true;
        },
      },
    }, () => socket.write(`GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nConnection: close\r\n\r\n`));
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        resolve(check(url, bytes, announced, undefined));
      } catch (err) {
        reject(err);
      }
    });
  });
}

function fetcher(way: Way): (url: string) => Promise<number> {
  switch (way) {
    case 'http-hash': return viaHttp;
    case 'undici-hash': return (url) => viaUndici(url, true);
    case 'undici-read': return (url) => viaUndici(url, false);
    case 'socket-read': {
      const buffer = Buffer.alloc(64 * 1024);
      return (url) => viaSocket(url, buffer);
    }
  }
}

const peakMiB = (): number => Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

async function serially(fetch: (url: string) => Promise<number>, urls: readonly string[], repeat: number): Promise<DirectClientResult> {
  await fetch(urls[0]!);
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < repeat; i++) for (const url of urls) bytes += await fetch(url);
  const used = process.cpuUsage(cpu);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { peakMiB: peakMiB(), cpuPerGB: (used.user + used.system) / 1e6 / (bytes / 1e9), mbPerSecond: bytes / 1e6 / seconds };
}

async function main(argv: readonly string[]): Promise<DirectClientResult> {
  let way: Way = 'http-hash';
  let serial = false;
  let repeat = 1;
  const urls: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--way') {
      const value = argv[++i];
      if (!WAYS.includes(value as Way)) throw new Error(`--way takes one of ${WAYS.join(', ')}`);
      way = value as Way;
    } else if (arg === '--serial') serial = true;
    else if (arg === '--repeat') repeat = Number(argv[++i]);
    else urls.push(arg);
  }
  if (urls.length === 0 || !(repeat >= 1)) throw new Error('usage: direct-blob-client [--way WAY] [--serial --repeat N] BLOB-URL…');
  const fetch = fetcher(way);
  if (serial) return serially(fetch, urls, repeat);
  await Promise.all(urls.map(fetch));
  return { peakMiB: peakMiB() };
}

/** Runs this program in a new node with `env` and returns what it printed. */
export function runDirectClient(args: readonly string[], env: NodeJS.ProcessEnv): DirectClientResult {
  const out = execFileSync(process.execPath, [__filename, ...args], { encoding: 'utf8', env });
  const result = JSON.parse(out.trim().split('\n').pop() ?? '') as DirectClientResult;
  if (!(result.peakMiB > 0)) throw new Error(`direct-blob-client ${args.join(' ')} printed ${out}`);
  return result;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exitCode = 1;
    },
  );
}
