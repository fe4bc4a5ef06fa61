/**
 * The "is there an update?" path: OpenImage + GetManifest + CloseImage of a small image on a
 * loopback registry (token auth by default, so a bearer token is part of the work), through an
 * already running `layerpipe serve --listen unix:…` (1.0, and 0.2.x on the same service) against
 * spawning `skopeo experimental-image-proxy` (and, for reference, spawning layerpipe) for the same
 * work. Rounds alternate between the programs; medians are printed. Target (issue 14): the warm
 * service at most a third of skopeo's time. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/service-latency-bench.js [--rounds 15] [--auth token|none]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  connectUnixTransport, defaultProxyCommand, ImageProxy, RpcImageProxy,
} from '../clients/typescript';
import { connectSeqpacket, SeqpacketChannel } from '../clients/typescript/seqpacket-channel';
import { makeLayer } from '../test/harness/oci-builder';
import { startRegistry, type RegistryAuthMode } from '../test/harness/registry';
import { emptyAuthFilePath, pushImage } from '../test/harness/registry-images';
import { INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import { num } from './throughput';
import { median } from './stats';

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

function parseArgs(argv: readonly string[]): { rounds: number; auth: RegistryAuthMode } {
  const opts: { rounds: number; auth: RegistryAuthMode } = { rounds: 15, auth: 'token' };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--rounds' && Number.isInteger(Number(argv[i + 1])) && Number(argv[i + 1]) > 0) opts.rounds = Number(argv[i + 1]);
    else if (argv[i] === '--auth' && (argv[i + 1] === 'token' || argv[i + 1] === 'none')) opts.auth = argv[i + 1] as RegistryAuthMode;
    else throw new Error(`unknown or bad argument ${argv[i]} (use --rounds N, --auth token|none)`);
  }
  return opts;
}

/** Spawn, Initialize, OpenImage, GetManifest, CloseImage, Shutdown: milliseconds until the child has exited. */
async function spawned02(command: string, ref: string, args: readonly string[]): Promise<number> {
  const t0 = now();
  const proxy = await ImageProxy.spawn({ command, args, env: { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath() } });
  await proxy.initialize();
  const image = await proxy.openImage(ref);
  await proxy.getManifest(image);
  await proxy.closeImage(image);
  const status = await proxy.shutdown();
  if (status !== 0) throw new Error(`${command} exited ${status}: ${proxy.stderr}`);
  return now() - t0;
}

/** Connect to the running service, Initialize (1.0), OpenImage, GetManifest, CloseImage, disconnect. */
async function service1(socket: string, ref: string): Promise<number> {
  const t0 = now();
  const proxy = await RpcImageProxy.connect(connectUnixTransport(socket), { payloads: ['fd'] });
  const image = await proxy.openImage(ref);
  await proxy.getManifest(image);
  await proxy.closeImage(image);
  await proxy.close();
  return now() - t0;
}

/** The same over the 0.2.x wire on the same service. */
async function service02(socket: string, ref: string): Promise<number> {
  const t0 = now();
  const proxy = ImageProxy.connect(new SeqpacketChannel(connectSeqpacket(socket), { peerName: socket }));
  await proxy.initialize();
  const image = await proxy.openImage(ref);
  await proxy.getManifest(image);
  await proxy.closeImage(image);
  await proxy.close();
  return now() - t0;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const missing = missingRegistryTools();
  if (missing.length > 0) {
    console.error(`service-latency-bench needs ${missing.join(', ')}: ${INSTALL_HINT}`);
    process.exitCode = 2;
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-latency-'));
  const registry = await startRegistry({ auth: opts.auth });
  const socket = path.join(dir, 'layerpipe.sock');
  try {
    const { ref } = await pushImage(registry, 'bench/small:v1', { layers: [makeLayer({ 'etc/os-release': 'ID=bench\n' })] });
    const args = ['--tls-verify=false', ...(registry.creds === undefined ? [] : ['--creds', registry.creds])];
    const proxyArgs = [...args, '--insecure-policy'];
    const service = spawn(defaultProxyCommand(), ['serve', '--listen', `unix:${socket}`, ...proxyArgs], {
      stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath() },
    });
    const exited = new Promise<number | null>((resolve) => service.once('close', (code) => resolve(code)));
    while (!existsSync(socket)) await new Promise((resolve) => setTimeout(resolve, 20));
    await service1(socket, ref); // the service's first sight of the image: token, connection, manifest

    const ways: Record<string, () => Promise<number>> = {
      'skopeo, spawned (0.2.x)': () => spawned02('skopeo', ref, args),
      'layerpipe, spawned (0.2.x)': () => spawned02(defaultProxyCommand(), ref, proxyArgs),
      'layerpipe service (1.0)': () => service1(socket, ref),
      'layerpipe service (0.2.x)': () => service02(socket, ref),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
    for (let round = 0; round < opts.rounds; round++) {
      for (const [label, run] of Object.entries(ways)) times[label]!.push(await run());
    }
    service.kill('SIGTERM');
    if ((await exited) !== 0) throw new Error('the service did not exit 0');

    const skopeo = median(times['skopeo, spawned (0.2.x)']!);
    console.log(`\nOpenImage + GetManifest + CloseImage of ${ref} (${opts.auth} auth), median of ${opts.rounds} alternating rounds`);
    console.log(`${'way'.padEnd(30)}${'median ms'.padEnd(12)}vs skopeo`);
    for (const [label, xs] of Object.entries(times)) console.log(`${label.padEnd(30)}${num(median(xs)).padEnd(12)}${num(median(xs) / skopeo, 2)}`);
  } finally {
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
});
