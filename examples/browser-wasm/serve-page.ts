/**
 * Runs the browser example by hand with one command:
 *
 *   node dist/examples/browser-wasm/serve-page.js [--pad-mib N]
 *
 * It writes the demo wasm module (padded with a custom section of N MiB, default 16, so the
 * progress bar has something to show) as an OCI artifact (examples/wasm-fetch's builder), starts
 * `layerpipe serve --listen ws://127.0.0.1:0` with a token file and this page's Origin allowed,
 * and serves the page on http://127.0.0.1:PORT/ (printed). The page reads the WebSocket address
 * and token from config.json on the same origin, never from its URL. Ctrl-C stops both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { writeWasmArtifact, type WrittenArtifact } from '../wasm-fetch/artifact';
import { demoWasmModule, uleb128 } from '../wasm-fetch/demo-module';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const LAYERPIPE = path.join(ROOT, 'bin', 'layerpipe');
const PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: path.join(ROOT, 'examples', 'browser-wasm', 'index.html'), type: 'text/html; charset=utf-8' },
  '/page.mjs': { file: path.join(ROOT, 'examples', 'browser-wasm', 'page.mjs'), type: 'text/javascript' },
  '/layerpipe-ws.mjs': { file: path.join(ROOT, 'dist', 'browser', 'layerpipe-ws.mjs'), type: 'text/javascript' },
};

/** The demo module with a custom section of `padBytes` bytes appended (custom sections do not change what a module does). */
export function paddedDemoModule(padBytes: number): Buffer {
  const name = Buffer.from('layerpipe.padding');
  const body = Buffer.concat([Buffer.from(uleb128(name.length)), name, randomBytes(padBytes)]);
  return Buffer.concat([demoWasmModule(), Buffer.from([0]), Buffer.from(uleb128(body.length)), body]);
}

export interface BrowserDemo {
  readonly pageUrl: string;
  readonly webSocketUrl: string;
  readonly artifact: WrittenArtifact;
  readonly service: ChildProcess;
  serviceLog(): string;
  stop(): Promise<void>;
}

export async function startBrowserDemo(padBytes: number): Promise<BrowserDemo> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-browser-wasm-'));
  const artifact = writeWasmArtifact(path.join(work, 'layout'), paddedDemoModule(padBytes), { ref: 'demo' });
  const reference = `oci:${artifact.layoutDir}:demo`;
  const token = randomBytes(24).toString('base64url');
  const tokenFile = path.join(work, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  let config = '';
  const http: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    if (url === '/config.json') return void res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(config);
    const page = PAGE_FILES[url];
    if (page === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': page.type }).end(readFileSync(page.file));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const pageUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const args = ['serve', '--listen', 'ws://127.0.0.1:0', '--token-file', tokenFile, '--allow-origin', pageUrl, '--insecure-policy'];
  const service = spawn(LAYERPIPE, args, { stdio: ['ignore', 'inherit', 'pipe'] });
  const log: Buffer[] = [];
  service.stderr!.on('data', (c: Buffer) => log.push(c));
  const serviceLog = (): string => Buffer.concat(log).toString('utf8');
  const webSocketUrl = await new Promise<string>((resolve, reject) => {
    const look = (): void => {
      const match = /listening on (ws:\/\/\S+)/.exec(serviceLog());
      if (match !== null) resolve(match[1]!);
    };
    service.stderr!.on('data', look);
    service.once('exit', () => reject(new Error(`layerpipe serve exited: ${serviceLog()}`)));
  });
  config = JSON.stringify({ url: webSocketUrl, token, reference });
  return {
    pageUrl: `${pageUrl}/`, webSocketUrl, artifact, service, serviceLog,
    stop: async () => {
      if (service.exitCode === null && service.signalCode === null) {
        const exited = new Promise((resolve) => service.once('exit', resolve));
        service.kill('SIGTERM');
        await exited;
      }
      await new Promise((resolve) => http.close(resolve));
      rmSync(work, { recursive: true, force: true });
    },
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const at = argv.indexOf('--pad-mib');
  const padMiB = at >= 0 ? Number(argv[at + 1]) : 16;
  if (!Number.isInteger(padMiB) || padMiB < 0) throw new Error('usage: serve-page [--pad-mib N]');
  const demo = await startBrowserDemo(padMiB * 1024 * 1024);
  process.stdout.write(`open ${demo.pageUrl} (the wasm layer is ${demo.artifact.layer.size} bytes); Ctrl-C stops\n`);
  process.once('SIGINT', () => void demo.stop().then(() => process.exit(0)));
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`serve-page: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
