/**
 * Cold start: how long a freshly spawned proxy takes to answer, layerpipe against skopeo 1.9.3
 * and against a bare `node -e 0` (the floor for any Node program), in the same run.
 *
 * - spawn → Initialize: from spawn until the Initialize reply is read (node: until it exits);
 *   the same without --insecure-policy, each program reading /etc/containers/policy.json, as
 *   containers-image-proxy-rs starts its proxy;
 * - first manifest: spawn, Initialize, OpenImage of a small image on a loopback docker-registry,
 *   GetManifest, Shutdown, until the proxy has exited; with layerpipe's time split by step.
 *
 * Every round runs each measurement once, in an order drawn anew for each round (bench/stats.ts
 * `shuffled`), so that a busy machine slows them alike and no measurement always follows the
 * same one; the figures are medians. Targets (issue 13): spawn → Initialize ≤ 1.15× and the
 * first manifest ≤ 1.6× of `node -e 0` in the same run. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/startup-bench.js [--rounds 15] [--quick] [--baseline PATH]
 *
 * Limits in the same run: `node -e 0`; a Node program answering Initialize with layerpipe's
 * SEQPACKET module and nothing else (bench/node-initialize-floor.ts); and one doing a first
 * manifest's requests with Node's own modules (bench/node-manifest-floor.ts): floors for any
 * Node proxy.
 * NODE_EXTRA_CA_CERTS is removed from every child's environment: Node parses that file at each
 * start (some 80 ms for a system bundle here), which pads node -e 0 and layerpipe alike and
 * flatters their ratios; skopeo never reads it.
 *
 * --baseline measures another layerpipe build too (e.g. a main checkout's bin/layerpipe), in the
 * same rounds, as rows marked "(baseline)": before/after on equal terms on a busy machine, with
 * the median difference of the two in each round and its bootstrap interval.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ImageProxy, defaultProxyCommand } from '../clients/typescript';
import { makeLayer } from '../test/harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../test/harness/registry';
import { emptyAuthFilePath, pushImage } from '../test/harness/registry-images';
import { findProgram, INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import type { BenchRow } from './bench-row';
import { printRows } from './print-rows';
import { median, pairedDifference, shuffled } from './stats';

const INITIALIZE_TARGET = 1.15;
const MANIFEST_TARGET = 1.6;
const QUICK_ROUNDS = 5;
const FULL_ROUNDS = 15;

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

type Program = 'layerpipe' | 'baseline' | 'skopeo';
const PROGRAMS: readonly Program[] = ['layerpipe', 'baseline', 'skopeo'];

/** bench/node-initialize-floor.js, made executable: the client spawns it as a proxy command. */
function initializeFloorCommand(): string {
  const file = path.join(__dirname, 'node-initialize-floor.js');
  chmodSync(file, 0o755);
  return file;
}

type Commands = Partial<Record<Program, string>>;
/** The same flags for both: no policy file, plain HTTP to the loopback registry, an empty auth file. */
const PROXY_ARGS = ['--insecure-policy', '--tls-verify=false'];
/**
 * As containers-image-proxy-rs starts skopeo by default: no policy flag, so each reads the
 * user's or the system's policy file at start (measured when /etc/containers/policy.json exists).
 */
const SYSTEM_POLICY_ARGS = ['--tls-verify=false'];
const SYSTEM_POLICY = '/etc/containers/policy.json';

/** Set over a child's environment: Node takes an empty NODE_EXTRA_CA_CERTS as none. */
export const NO_EXTRA_CA_CERTS = { NODE_EXTRA_CA_CERTS: '' } as const;

/** The environment every measured program starts with: this one without extra CA certificates. */
export function startupBenchEnv(): NodeJS.ProcessEnv {
  return { ...process.env, ...NO_EXTRA_CA_CERTS };
}

const proxyEnv = (): NodeJS.ProcessEnv => ({ ...startupBenchEnv(), REGISTRY_AUTH_FILE: emptyAuthFilePath() });

/** A node program spawned to its exit (status 0 required), in ms. */
function nodeRun(args: readonly string[]): Promise<number> {
  const t0 = now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: startupBenchEnv() });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(now() - t0) : reject(new Error(`node ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}

const bareNode = (): Promise<number> => nodeRun(['-e', '0']);

/** bench/node-manifest-floor.ts on the image `ref` (docker://HOST:PORT/REPOSITORY:TAG). */
function nodeManifestFloor(ref: string): Promise<number> {
  const m = /^docker:\/\/([^/:]+):(\d+)\/(.+):([^:/]+)$/.exec(ref);
  if (m === null) throw new Error(`startup-bench: unexpected image reference ${ref}`);
  return nodeRun([path.join(__dirname, 'node-manifest-floor.js'), ...m.slice(1)]);
}

async function shutdown(proxy: ImageProxy, program: string): Promise<void> {
  const status = await proxy.shutdown();
  if (status !== 0) throw new Error(`${program} exited ${status}: ${proxy.stderr}`);
}

/** Spawn until the Initialize reply; the shutdown afterwards is not timed. */
async function spawnToInitialize(program: string, command: string, args: readonly string[] = PROXY_ARGS): Promise<number> {
  const t0 = now();
  const proxy = await ImageProxy.spawn({ command, args: [...args], env: proxyEnv() });
  await proxy.initialize();
  const elapsed = now() - t0;
  await shutdown(proxy, program);
  return elapsed;
}

interface ManifestSteps {
  /** Spawn to exit. */
  total: number;
  initialize: number;
  openImage: number;
  getManifest: number;
  /** Shutdown sent to the process gone. */
  shutdown: number;
}

async function firstManifest(program: Program, command: string, ref: string): Promise<ManifestSteps> {
  const t0 = now();
  const proxy = await ImageProxy.spawn({ command, args: PROXY_ARGS, env: proxyEnv() });
  await proxy.initialize();
  const t1 = now();
  const image = await proxy.openImage(ref);
  const t2 = now();
  const manifest = await proxy.getManifest(image);
  const t3 = now();
  if (manifest.bytes.length === 0) throw new Error(`${program}: empty manifest`);
  await shutdown(proxy, program);
  const t4 = now();
  return { total: t4 - t0, initialize: t1 - t0, openImage: t2 - t1, getManifest: t3 - t2, shutdown: t4 - t3 };
}

interface Samples {
  node: number[];
  /** bench/node-manifest-floor.ts. */
  nodeManifest: number[];
  /** bench/node-initialize-floor.ts, spawn → Initialize. */
  nodeInitialize: number[];
  initialize: Record<Program, number[]>;
  /** spawn → Initialize with SYSTEM_POLICY_ARGS. */
  initializeSystemPolicy: Record<Program, number[]>;
  manifest: Record<Program, ManifestSteps[]>;
}

async function measureRounds(rounds: number, commands: Commands, ref: string | undefined): Promise<Samples> {
  const samples: Samples = {
    node: [], nodeManifest: [], nodeInitialize: [],
    initialize: { layerpipe: [], baseline: [], skopeo: [] }, initializeSystemPolicy: { layerpipe: [], baseline: [], skopeo: [] }, manifest: { layerpipe: [], baseline: [], skopeo: [] },
  };
  const steps: (() => Promise<void>)[] = [async () => void samples.node.push(await bareNode())];
  if (ref !== undefined) steps.push(async () => void samples.nodeManifest.push(await nodeManifestFloor(ref)));
  const floor = initializeFloorCommand();
  steps.push(async () => void samples.nodeInitialize.push(await spawnToInitialize('floor', floor)));
  for (const program of PROGRAMS) {
    const command = commands[program];
    if (command === undefined) continue;
    steps.push(async () => void samples.initialize[program].push(await spawnToInitialize(program, command)));
    if (program !== 'baseline' && existsSync(SYSTEM_POLICY)) {
      steps.push(async () => void samples.initializeSystemPolicy[program].push(await spawnToInitialize(program, command, SYSTEM_POLICY_ARGS)));
    }
    if (ref !== undefined) steps.push(async () => void samples.manifest[program].push(await firstManifest(program, command, ref)));
  }
  // One untimed pass: the page cache then holds every program's files for all rounds alike.
  for (const step of steps) await step();
  samples.node.length = 0;
  samples.nodeManifest.length = 0;
  samples.nodeInitialize.length = 0;
  for (const program of PROGRAMS) {
    samples.initialize[program].length = 0;
    samples.initializeSystemPolicy[program].length = 0;
    samples.manifest[program].length = 0;
  }
  for (let round = 0; round < rounds; round++) {
    for (const step of shuffled(steps, round)) await step();
  }
  return samples;
}

const verdict = (ratio: number, limit: number): string => (ratio <= limit ? 'ok' : 'over');

/** The rows of one layerpipe build: `label` prefixes their names ("" for the build measured). */
function layerpipeRows(samples: Samples, program: 'layerpipe' | 'baseline', label: string, hasSkopeo: boolean): BenchRow[] {
  const node = median(samples.node);
  const skopeo = (xs: number[]): { skopeo?: number } => (hasSkopeo ? { skopeo: median(xs) } : {});
  const init = median(samples.initialize[program]);
  const rows: BenchRow[] = [{
    name: `startup: ${label}spawn → Initialize`, layerpipe: init, ...skopeo(samples.initialize.skopeo), unit: 'ms',
    ratio: init / node, target: `≤ ${INITIALIZE_TARGET}× node -e 0`, limit: verdict(init / node, INITIALIZE_TARGET),
  }];
  const withPolicy = samples.initializeSystemPolicy[program];
  if (withPolicy.length > 0) {
    rows.push({
      name: `startup: ${label}  the same, reading ${SYSTEM_POLICY} (no --insecure-policy)`, layerpipe: median(withPolicy),
      ...skopeo(samples.initializeSystemPolicy.skopeo), unit: 'ms', ratio: median(withPolicy) / node,
    });
  }
  const lp = samples.manifest[program];
  if (lp.length > 0) {
    const total = median(lp.map((s) => s.total));
    rows.push({
      name: `startup: ${label}spawn + OpenImage + GetManifest + Shutdown`, layerpipe: total, ...skopeo(samples.manifest.skopeo.map((s) => s.total)), unit: 'ms',
      ratio: total / node, target: `≤ ${MANIFEST_TARGET}× node -e 0`, limit: verdict(total / node, MANIFEST_TARGET),
    });
    for (const step of ['initialize', 'openImage', 'getManifest', 'shutdown'] as const) {
      rows.push({ name: `startup:   ${label}of which ${step}`, layerpipe: median(lp.map((s) => s[step])), ...skopeo(samples.manifest.skopeo.map((s) => s[step])), unit: 'ms' });
    }
  }
  return rows;
}

/** layerpipe minus the baseline in each round, for spawn → Initialize and the first manifest. */
function pairedRows(samples: Samples): BenchRow[] {
  const row = (what: string, a: readonly number[], b: readonly number[]): BenchRow => {
    // On this kind of machine the medians of two builds move by more than their difference from
    // one run to the next, while two measurements of the same round share its moment.
    const { median: difference, low, high } = pairedDifference(a, b);
    return { name: `startup: ${what}: layerpipe − baseline, paired by round`, layerpipe: difference, unit: 'ms', limit: `90%: [${low.toFixed(2)}, ${high.toFixed(2)}]` };
  };
  const rows = [row('spawn → Initialize', samples.initialize.layerpipe, samples.initialize.baseline)];
  const [lp, base] = [samples.manifest.layerpipe, samples.manifest.baseline];
  if (lp.length > 0) {
    rows.push(row('first manifest', lp.map((s) => s.total), base.map((s) => s.total)));
    rows.push(row('its OpenImage', lp.map((s) => s.openImage), base.map((s) => s.openImage)));
  }
  return rows;
}

function rowsOf(samples: Samples, hasSkopeo: boolean, hasBaseline: boolean): BenchRow[] {
  return [
    { name: 'startup: node -e 0 (spawn → exit)', layerpipe: median(samples.node), unit: 'ms' },
    { name: 'startup: plain Node Initialize (the SEQPACKET addon, one JSON reply; no proxy)', layerpipe: median(samples.nodeInitialize), unit: 'ms', ratio: median(samples.nodeInitialize) / median(samples.node), limit: 'floor for a Node proxy' },
    ...(samples.nodeManifest.length > 0
      ? [{ name: 'startup: plain Node first manifest (node:tls probe, node:http; no proxy)', layerpipe: median(samples.nodeManifest), unit: 'ms', ratio: median(samples.nodeManifest) / median(samples.node), limit: 'floor for a Node client' }]
      : []),
    ...layerpipeRows(samples, 'layerpipe', '', hasSkopeo),
    ...(hasBaseline ? [...layerpipeRows(samples, 'baseline', '(baseline) ', hasSkopeo), ...pairedRows(samples)] : []),
  ];
}

async function withRegistryImage<T>(fn: (ref: string | undefined) => Promise<T>): Promise<T> {
  const missing = missingRegistryTools();
  if (missing.length > 0) {
    console.error(`startup-bench: no first-manifest rows without ${missing.join(', ')}: ${INSTALL_HINT}`);
    return fn(undefined);
  }
  let registry: RunningRegistry | undefined;
  try {
    registry = await startRegistry();
    const { ref } = await pushImage(registry, 'bench/startup:v1', { layers: [makeLayer({ 'etc/os-release': 'ID=bench\n' })] });
    return await fn(ref);
  } finally {
    await registry?.stop();
  }
}

interface StartupOptions {
  quick: boolean;
  rounds?: number;
  /** Another layerpipe build's bin/layerpipe, measured in the same rounds. */
  baseline?: string;
}

export async function run(options: StartupOptions): Promise<BenchRow[]> {
  const rounds = options.rounds ?? (options.quick ? QUICK_ROUNDS : FULL_ROUNDS);
  const hasSkopeo = findProgram('skopeo') !== undefined;
  const commands: Commands = { layerpipe: defaultProxyCommand(), ...(options.baseline !== undefined ? { baseline: options.baseline } : {}), ...(hasSkopeo ? { skopeo: 'skopeo' } : {}) };
  return withRegistryImage(async (ref) => rowsOf(await measureRounds(rounds, commands, ref), hasSkopeo, options.baseline !== undefined));
}

function parseArgs(argv: readonly string[]): StartupOptions {
  const opts: StartupOptions = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--quick') opts.quick = true;
    else if (argv[i] === '--rounds' && Number.isInteger(value) && value > 0) {
      opts.rounds = value;
      i++;
    } else if (argv[i] === '--baseline' && argv[i + 1] !== undefined) {
      opts.baseline = path.resolve(argv[i + 1] as string);
      i++;
    } else throw new Error(`unknown or bad argument ${argv[i]} (use --rounds N, --quick, --baseline PATH)`);
  }
  return opts;
}

if (require.main === module) {
  const opts = parseArgs(process.argv.slice(2));
  run(opts).then(
    (rows) => printRows(`cold start, medians of ${opts.rounds ?? (opts.quick ? QUICK_ROUNDS : FULL_ROUNDS)} rounds in shuffled order (same run)`, rows),
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack ?? err.message : String(err));
      process.exitCode = 1;
    },
  );
}
