/**
 * Starts and stops Debian's docker-registry (distribution 2.8) on a free loopback port, each
 * with its own config and storage in a temp dir: plain HTTP or TLS (test CA), and no auth,
 * htpasswd Basic auth or token auth (with a token server from token-server.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { testPki } from './registry-pki';
import { REGISTRY_BINARY, htpasswdFile } from './registry-tools';
import { startTokenServer, type TokenServer } from './token-server';

export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

export interface StartRegistryOptions {
  readonly tls?: boolean;
  readonly auth?: RegistryAuthMode;
  /** Users and passwords for htpasswd and token auth; default DEFAULT_USERS. */
  readonly users?: Readonly<Record<string, string>>;
  /** Token auth: callers without credentials may pull. */
  readonly anonymousPull?: boolean;
  /** docker-registry's log level (default "error", which includes 404s; "info" logs every request). */
  readonly logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

export const DEFAULT_USERS: Readonly<Record<string, string>> = { tester: 'pa55-w0rd', other: 'second-secret' };

export interface RunningRegistry {
  /** host:port, as an image reference names the registry. */
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly auth: RegistryAuthMode;
  readonly users: Readonly<Record<string, string>>;
  /** USER:PASSWORD of the first user (for --creds); undefined without auth. */
  readonly creds: string | undefined;
  /** A directory with the CA as ca.crt (--cert-dir); undefined for plain HTTP. */
  readonly certDir: string | undefined;
  readonly caCertFile: string | undefined;
  readonly dataDir: string;
  readonly tokenServer: TokenServer | undefined;
  readonly pid: number;
  /** "docker://HOST/REPO_AND_TAG". */
  ref(repoAndTag: string): string;
  /** Base URL: http(s)://host:port. */
  readonly url: string;
  /** What the registry wrote to stdout/stderr (the last 64 KiB). */
  log(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registries must not outlive a test process that dies without calling stop(). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

/** A port that was free a moment ago (start retries if another process takes it meanwhile). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Any HTTP answer (200, or 401 with auth) means the registry serves. */
function probe(url: string, ca: Buffer | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const onResponse = (res: http.IncomingMessage): void => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    };
    const req = ca === undefined ? http.get(url, onResponse) : https.get(url, { ca }, onResponse);
    req.on('error', () => resolve(false));
    req.setTimeout(1000, () => req.destroy());
  });
}

function registryConfig(dataDir: string, port: number, opts: StartRegistryOptions, extra: { tls?: { certificate: string; key: string }; auth?: unknown }): string {
  const config: Record<string, unknown> = {
    version: '0.1',
    log: { level: opts.logLevel ?? 'error', accesslog: { disabled: opts.logLevel !== 'info' && opts.logLevel !== 'debug' } },
    storage: {
      filesystem: { rootdirectory: dataDir },
      delete: { enabled: true },
      redirect: { disable: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${port}`,
      // A fixed secret keeps the registry from warning and from generating one.
      secret: 'layerpipe-test-secret',
      ...(extra.tls !== undefined ? { tls: extra.tls } : {}),
    },
    ...(extra.auth !== undefined ? { auth: extra.auth } : {}),
  };
  // YAML is a superset of JSON, so the config is written as JSON.
  return JSON.stringify(config, null, 2);
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  installExitHook();
  const tls = opts.tls ?? false;
  const auth = opts.auth ?? 'none';
  const users = opts.users ?? DEFAULT_USERS;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-registry-'));
  const dataDir = path.join(dir, 'data');
  const pki = tls || auth === 'token' ? await testPki() : undefined;
  let tokenServer: TokenServer | undefined;
  try {
    let authConfig: unknown;
    if (auth === 'htpasswd') {
      writeFileSync(path.join(dir, 'htpasswd'), htpasswdFile(users));
      authConfig = { htpasswd: { realm: 'layerpipe-test', path: path.join(dir, 'htpasswd') } };
    } else if (auth === 'token' && pki !== undefined) {
      tokenServer = await startTokenServer({
        users,
        issuer: 'layerpipe-test-issuer',
        service: 'layerpipe-test-registry',
        signingKeyPem: pki.tokenKeyPem,
        certDerBase64: pki.tokenCertDerBase64,
        anonymousPull: opts.anonymousPull ?? false,
      });
      authConfig = { token: { realm: tokenServer.realm, service: 'layerpipe-test-registry', issuer: 'layerpipe-test-issuer', rootcertbundle: pki.caCertFile } };
    }
    const tlsConfig = tls && pki !== undefined ? { certificate: pki.serverCertFile, key: pki.serverKeyFile } : undefined;
    const ca = tls && pki !== undefined ? readFileSync(pki.caCertFile) : undefined;

    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const configFile = path.join(dir, 'config.yml');
      writeFileSync(configFile, registryConfig(dataDir, port, opts, { tls: tlsConfig, auth: authConfig }));
      const started = await launch(configFile, port, tls, ca);
      if (started.kind === 'port-taken' && attempt < 5) continue;
      if (started.kind !== 'ok') throw new Error(`docker-registry did not start (${started.kind}):\n${started.log}`);
      const { child, log } = started;
      const scheme = tls ? 'https' : 'http';
      const host = `127.0.0.1:${port}`;
      const firstUser = Object.keys(users)[0];
      const token = tokenServer;
      let stopped = false;
      return {
        host,
        port,
        tls,
        auth,
        users,
        creds: auth === 'none' || firstUser === undefined ? undefined : `${firstUser}:${users[firstUser]}`,
        certDir: tls ? pki?.certDir : undefined,
        caCertFile: tls ? pki?.caCertFile : undefined,
        dataDir,
        tokenServer,
        pid: child.pid ?? 0,
        url: `${scheme}://${host}`,
        ref: (repoAndTag) => `docker://${host}/${repoAndTag}`,
        log: () => log.text,
        stop: async () => {
          if (stopped) return;
          stopped = true;
          await stopChild(child);
          await token?.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (err) {
    await tokenServer?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

interface LogBuffer {
  text: string;
}

type LaunchResult = { kind: 'ok'; child: ChildProcess; log: LogBuffer } | { kind: 'port-taken' | 'exited' | 'timeout'; log: string };

const LOG_LIMIT = 64 * 1024;
const START_TIMEOUT_MS = 15_000;

async function launch(configFile: string, port: number, tls: boolean, ca: Buffer | undefined): Promise<LaunchResult> {
  const child = spawn(REGISTRY_BINARY, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const log: LogBuffer = { text: '' };
  const append = (chunk: Buffer): void => {
    log.text = (log.text + chunk.toString('utf8')).slice(-LOG_LIMIT);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    running.delete(child);
  });
  child.once('error', (err) => {
    exited = true;
    append(Buffer.from(`spawn error: ${err.message}\n`));
  });
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}/v2/`;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) return { kind: /address already in use/.test(log.text) ? 'port-taken' : 'exited', log: log.text };
    if (await probe(url, ca)) return { kind: 'ok', child, log };
    await new Promise((r) => setTimeout(r, 10));
  }
  await stopChild(child);
  return { kind: 'timeout', log: log.text };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
