/**
 * The soak: many open/read/finish/close cycles on one proxy, with the ways clients abandon
 * transfers mixed in (a GetBlob never read nor finished, a GetRawBlob whose error pipe is
 * never read, CloseImage mid-transfer, a client that dies mid-transfer), sampling the proxy's
 * RSS and fd count as it goes. Used by `npm run soak` (bench/soak.ts) and, short, by
 * test/stress/soak.test.ts.
 *
 * Verdict tolerances, and why:
 * - fds: none above the baseline at any sample, not counting the write ends of pipes the
 *   client never finished. Those the proxy holds by design (as skopeo does: the write end
 *   closes at FinishPipe or at the end of the session) whenever the copy had completed before
 *   CloseImage; they are identified by inode (the client read the inode of each read end it
 *   abandoned), counted apart, and must all go once FinishPipe is called at the end. Every
 *   other fd is released by its cycle, so one more is a leak, never noise.
 * - RSS: the samples after the first fifth are judged (warm-up: V8 grows its heap in steps
 *   before it settles). The growth from the median of their first quarter to the median of
 *   their last must stay within RSS_GROWTH_MIB, and, over runs of at least SLOPE_MIN_CYCLES,
 *   the fitted slope within RSS_SLOPE_KIB_PER_CYCLE (10 MiB per 10,000 cycles). GC timing moves
 *   RSS by a few MiB either way, which over a short run looks like a steep slope; a real leak is
 *   a steady slope across a long series.
 */
import { createHash } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { CheckedClient, drainFd, verifiedSession, type Answer } from './checked-client';
import type { Fixtures } from './fixtures';
import { closeFds, StressProxy } from './proxy-process';
import { excerpt, type Violation } from './reply-checks';

export const RSS_SLOPE_KIB_PER_CYCLE = 1;
export const RSS_GROWTH_MIB = 24;
const SLOPE_MIN_CYCLES = 2000;

export type Pattern = 'cycle' | 'unreadBlob' | 'unreadRawErrorPipe' | 'closeMidTransfer' | 'clientDies';
/** Every ABANDON_EVERY-th cycle is one of the abandonment patterns, in turn. */
const ABANDON_PATTERNS: readonly Pattern[] = ['unreadBlob', 'unreadRawErrorPipe', 'closeMidTransfer', 'clientDies'];
const ABANDON_EVERY = 10;
const TIMEOUT_MS = 5000;

export interface SoakOptions {
  readonly cycles: number;
  readonly sampleEvery: number;
  readonly log?: (line: string) => void;
}

export interface Sample {
  readonly cycle: number;
  readonly rssMiB: number;
  /** fds of the proxy, not counting `unfinished`. */
  readonly fds: number;
  /** Write ends of pipes the client abandoned unfinished, still held by the proxy. */
  readonly unfinished: number;
  /** Slowest cycle since the previous sample. */
  readonly slowestMs: number;
}

export interface SoakReport {
  readonly cycles: number;
  readonly elapsedMs: number;
  readonly baselineFds: number;
  readonly samples: readonly Sample[];
  readonly patterns: Readonly<Record<Pattern, number>>;
  /** Clients that died mid-transfer: how each proxy ended. */
  readonly dyingClients: { readonly exits: number; readonly clean: number; readonly slowestExitMs: number };
  readonly violations: readonly Violation[];
  readonly finalCheckOk: boolean;
  readonly fdsFlat: boolean;
  readonly rssSlopeKiBPerCycle: number;
  readonly rssGrowthMiB: number;
  readonly rssBounded: boolean;
  readonly verdict: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!;
}

/** Least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function openOci(client: CheckedClient, fx: Fixtures): Promise<number | undefined> {
  const opened = await client.expectSuccess('OpenImage', [fx.oci.ref], 'soak');
  return typeof opened?.reply.value === 'number' ? opened.reply.value : undefined;
}

/** A request whose reply fds the caller takes over undrained (the way clients abandon pipes). */
function sendKeepingFds(client: CheckedClient, method: string, args: readonly unknown[]): Promise<Answer | undefined> {
  return client.send(Buffer.from(JSON.stringify({ method, args })), method, [], false);
}

/** Pipes the client left unfinished: their ids, and the inodes ("pipe:[N]") the proxy's write ends share. */
interface Abandoned {
  readonly pipeIds: number[];
  readonly inodes: Set<string>;
}

/**
 * GetBlob of the streamed layer, never read and never finished, then CloseImage: with the read
 * end dropped first (the copy meets a closed pipe) or held open (the copy is blocked on a full
 * pipe when the image closes).
 */
async function unreadBlob(client: CheckedClient, fx: Fixtures, holdReadEnd: boolean, abandoned: Abandoned): Promise<void> {
  const id = await openOci(client, fx);
  if (id === undefined) return;
  const layer = fx.oci.layers[1]!;
  const blob = await sendKeepingFds(client, 'GetBlob', [id, layer.digest, layer.size]);
  const fds = blob?.reply.fds ?? [];
  for (const fd of fds) abandoned.inodes.add(readlinkSync(`/proc/self/fd/${fd}`));
  if (blob?.reply.success === true) abandoned.pipeIds.push(blob.reply.pipeid);
  if (!holdReadEnd) closeFds(fds);
  await client.expectSuccess('CloseImage', [id], 'soak: CloseImage after an abandoned GetBlob');
  closeFds(fds);
}

/** GetRawBlob whose data is read but whose error pipe is closed unread. */
async function unreadRawErrorPipe(client: CheckedClient, fx: Fixtures): Promise<void> {
  const id = await openOci(client, fx);
  if (id === undefined) return;
  const layer = fx.oci.layers[1]!;
  const raw = await sendKeepingFds(client, 'GetRawBlob', [id, layer.digest]);
  const [data, errorPipe] = raw?.reply.fds ?? [];
  if (errorPipe !== undefined) closeFds([errorPipe]);
  if (data !== undefined) {
    const bytes = (await drainFd(data)).data;
    if (sha256(bytes) !== layer.digest) client.violation('wrongAnswer', `soak: GetRawBlob delivered ${bytes.length} bytes not hashing to ${layer.digest}`);
  }
  await client.expectSuccess('CloseImage', [id], 'soak: CloseImage after a raw blob');
}

/** CloseImage while the blob is still streaming: FinishPipe must fail, the pipe must end. */
async function closeMidTransfer(client: CheckedClient, fx: Fixtures): Promise<void> {
  const id = await openOci(client, fx);
  if (id === undefined) return;
  const layer = fx.oci.layers[1]!;
  const blob: Answer | undefined = await client.expectSuccess('GetBlob', [id, layer.digest, layer.size], 'soak');
  await client.expectSuccess('CloseImage', [id], 'soak: CloseImage mid-transfer');
  if (blob === undefined) return;
  const finished = await client.call('FinishPipe', [blob.reply.pipeid]);
  // Either the copy had already finished into the pipe (success) or it was cut (an error): both are answers.
  if (finished === undefined) return;
  await Promise.all(blob.pipes);
}

/** A second proxy whose client dies mid-transfer: it must exit 0, quickly, with nothing on stderr. */
async function clientDies(fx: Fixtures, record: (v: Violation) => void): Promise<{ ms: number; clean: boolean }> {
  const proxy = await StressProxy.start();
  const client = new CheckedClient(proxy, TIMEOUT_MS, record);
  await client.call('Initialize', []);
  const id = await openOci(client, fx);
  const layer = fx.oci.layers[1]!;
  // The transfer is still blocked on the unread pipe when the socket closes.
  const blob = id === undefined ? undefined : await sendKeepingFds(client, 'GetBlob', [id, layer.digest, layer.size]);
  const started = Date.now();
  const status = await proxy.close(TIMEOUT_MS);
  const ms = Date.now() - started;
  closeFds(blob?.reply.fds ?? []);
  const clean = status.code === 0 && proxy.stderr === '';
  if (!clean) record({ kind: 'crash', detail: `a client died mid-transfer: the proxy exited with code ${status.code} signal ${status.signal}, stderr ${excerpt(proxy.stderr, 300)}` });
  return { ms, clean };
}

/** The proxy's fds once settled (or after limitMs), split into unfinished pipes and the rest. */
async function settleFds(proxy: StressProxy, baseline: number, abandoned: Abandoned, limitMs: number): Promise<{ fds: number; unfinished: number }> {
  const until = Date.now() + limitMs;
  for (;;) {
    const targets = proxy.fdTargets();
    const unfinished = targets.filter((t) => abandoned.inodes.has(t)).length;
    const fds = targets.length - unfinished;
    if (fds <= baseline || Date.now() >= until) return { fds, unfinished };
    await sleep(10);
  }
}

export async function runSoak(fx: Fixtures, options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const violations: Violation[] = [];
  const record = (v: Violation): void => {
    if (violations.length < 1000) violations.push(v);
  };
  const started = Date.now();
  const proxy = await StressProxy.start();
  const client = new CheckedClient(proxy, TIMEOUT_MS, record);
  await client.call('Initialize', []);
  for (const image of fx.images) await verifiedSession(client, image, [0, 1]);
  await client.settleDrains();
  await sleep(100);
  const baselineFds = proxy.fdCount();
  const patterns: Record<Pattern, number> = { cycle: 0, unreadBlob: 0, unreadRawErrorPipe: 0, closeMidTransfer: 0, clientDies: 0 };
  const dying = { exits: 0, clean: 0, slowestExitMs: 0 };
  const samples: Sample[] = [];
  const abandoned: Abandoned = { pipeIds: [], inodes: new Set() };
  let slowest = 0;
  const sample = async (cycle: number): Promise<void> => {
    const { fds, unfinished } = await settleFds(proxy, baselineFds, abandoned, 1000);
    const s: Sample = { cycle, rssMiB: proxy.memory().rssMiB, fds, unfinished, slowestMs: slowest };
    samples.push(s);
    slowest = 0;
    log(`cycle ${String(cycle).padStart(6)}: RSS ${s.rssMiB.toFixed(1)} MiB, ${fds} fds (baseline ${baselineFds}) + ${unfinished} unfinished pipes, slowest cycle ${s.slowestMs.toFixed(0)} ms`);
  };
  await sample(0);
  for (let cycle = 1; cycle <= options.cycles && !client.dead && !client.stalled; cycle++) {
    const t0 = Date.now();
    const pattern: Pattern = cycle % ABANDON_EVERY === 0 ? ABANDON_PATTERNS[(cycle / ABANDON_EVERY) % ABANDON_PATTERNS.length]! : 'cycle';
    patterns[pattern]++;
    if (pattern === 'cycle') await verifiedSession(client, fx.images[cycle % fx.images.length]!, [1]);
    else if (pattern === 'unreadBlob') await unreadBlob(client, fx, patterns.unreadBlob % 2 === 0, abandoned);
    else if (pattern === 'unreadRawErrorPipe') await unreadRawErrorPipe(client, fx);
    else if (pattern === 'closeMidTransfer') await closeMidTransfer(client, fx);
    else {
      const died = await clientDies(fx, record);
      dying.exits++;
      if (died.clean) dying.clean++;
      dying.slowestExitMs = Math.max(dying.slowestExitMs, died.ms);
    }
    await client.settleDrains();
    slowest = Math.max(slowest, Date.now() - t0);
    if (cycle % options.sampleEvery === 0 || cycle === options.cycles) await sample(cycle);
  }

  // Still answering correctly at the end, on every transport, and back to the baseline.
  let finalCheckOk = !client.dead && !client.stalled;
  for (const image of fx.images) finalCheckOk = (await verifiedSession(client, image, [0, 1, 2])) && finalCheckOk;
  await client.settleDrains();
  // Finishing the abandoned pipes must release every fd they held (their results do not matter).
  const heldAtEnd = (await settleFds(proxy, baselineFds, abandoned, 1000)).unfinished;
  for (const id of abandoned.pipeIds) await client.call('FinishPipe', [id]);
  const finalFds = (await settleFds(proxy, baselineFds, { pipeIds: [], inodes: new Set() }, 2000)).fds;
  if (finalFds > baselineFds) finalCheckOk = false;
  const status = await proxy.close();
  if (status.code !== 0 || proxy.stderr !== '') {
    finalCheckOk = false;
    record({ kind: 'crash', detail: `at the end of the soak the proxy exited ${status.code} (signal ${status.signal}), stderr ${excerpt(proxy.stderr, 300)}` });
  }

  const steady = samples.filter((s) => s.cycle >= options.cycles / 5);
  const rssSlopeKiBPerCycle = slope(steady.map((s) => ({ x: s.cycle, y: s.rssMiB * 1024 })));
  const quarter = Math.max(1, Math.floor(steady.length / 4));
  const rssGrowthMiB = median(steady.slice(-quarter).map((s) => s.rssMiB)) - median(steady.slice(0, quarter).map((s) => s.rssMiB));
  const fdsFlat = samples.every((s) => s.fds <= baselineFds) && finalFds <= baselineFds;
  const slopeJudged = options.cycles * 0.8 >= SLOPE_MIN_CYCLES;
  const rssBounded = (!slopeJudged || rssSlopeKiBPerCycle <= RSS_SLOPE_KIB_PER_CYCLE) && rssGrowthMiB <= RSS_GROWTH_MIB;
  const ok = fdsFlat && rssBounded && finalCheckOk && violations.length === 0;
  const verdict = [
    ok ? 'FLAT' : 'NOT FLAT',
    `fds ${fdsFlat ? 'flat' : 'above baseline'} (max ${Math.max(...samples.map((s) => s.fds), finalFds)}, baseline ${baselineFds}, tolerance 0; ${finalFds} after FinishPipe of the ${abandoned.pipeIds.length} abandoned pipes, ${heldAtEnd} of which the proxy still held)`,
    `RSS slope ${rssSlopeKiBPerCycle.toFixed(2)} KiB/cycle (${slopeJudged ? `tolerance ${RSS_SLOPE_KIB_PER_CYCLE}` : `not judged under ${SLOPE_MIN_CYCLES} cycles`}), growth ${rssGrowthMiB.toFixed(1)} MiB (tolerance ${RSS_GROWTH_MIB})`,
    `final check ${finalCheckOk ? 'ok' : 'FAILED'}`,
    `${violations.length} violations`,
  ].join('; ');
  return {
    cycles: patterns.cycle + patterns.unreadBlob + patterns.unreadRawErrorPipe + patterns.closeMidTransfer + patterns.clientDies,
    elapsedMs: Date.now() - started, baselineFds, samples, patterns, dyingClients: dying, violations, finalCheckOk,
    fdsFlat, rssSlopeKiBPerCycle, rssGrowthMiB, rssBounded, verdict,
  };
}

export function formatSoak(r: SoakReport): string {
  const lines = [
    `soak: ${r.cycles} cycles in ${(r.elapsedMs / 1000).toFixed(1)} s (${Object.entries(r.patterns).map(([k, v]) => `${k} ${v}`).join(', ')})`,
    `  clients dying mid-transfer: ${r.dyingClients.clean}/${r.dyingClients.exits} proxies exited 0 with empty stderr, slowest exit ${r.dyingClients.slowestExitMs} ms`,
    '   cycle   RSS MiB   fds  unfinished  slowest ms',
    ...r.samples.map((s) => `  ${String(s.cycle).padStart(6)} ${s.rssMiB.toFixed(1).padStart(9)} ${String(s.fds).padStart(5)} ${String(s.unfinished).padStart(11)} ${s.slowestMs.toFixed(0).padStart(11)}`),
    `verdict: ${r.verdict}`,
    ...r.violations.slice(0, 5).map((v) => `  ${v.kind}: ${v.detail}`),
  ];
  return lines.join('\n');
}
