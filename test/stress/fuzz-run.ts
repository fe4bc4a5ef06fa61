/**
 * A fuzz run, shared by the CI test (test/stress/fuzz.test.ts) and `npm run fuzz`: first every
 * case is run and every violation counted (so one run reports crashes, hangs, oversize replies
 * and fd leaks side by side); then, for each kind of violation seen, fast-check replays the
 * first case that showed it (same seed, its path) and shrinks it to a minimal counterexample.
 */
import fc from 'fast-check';
import { caseArb, Sym, type Action } from './arbitraries';
import type { Fixtures } from './fixtures';
import { DEFAULT_ENGINE_OPTIONS, FuzzEngine, type EngineOptions } from './fuzz-engine';
import { VIOLATION_KINDS, type Violation, type ViolationKind } from './reply-checks';

/** The property each kind of violation breaks, as the report and the tests word it. */
export const PROPERTIES: Readonly<Record<ViolationKind, string>> = {
  crash: 'the proxy stays alive (and exits 0 on Shutdown and at end of stream)',
  hang: 'every request is answered within the time limit',
  oversize: `no reply but GetLayerInfo's exceeds MAX_MESSAGE_SIZE (32 KiB)`,
  malformedReply: 'every reply is a JSON object with exactly the five keys, consistent with its fds and pipeid',
  stackTrace: 'no reply carries a stack trace',
  cwdLeak: `no reply reveals the server's working directory`,
  wrongAnswer: 'valid sessions between the garbage get correct answers and verified bytes',
  fdLeak: `the proxy's fd count returns to its baseline after every case`,
  stderr: 'the proxy writes nothing on stderr',
};

export interface FuzzRunOptions {
  readonly runs: number;
  readonly seed: number;
  /** Counting stops (cases are skipped) after this long. */
  readonly budgetMs: number;
  /** Time for shrinking, shared by the kinds of violation found. */
  readonly shrinkBudgetMs: number;
  readonly engine?: EngineOptions;
  readonly log?: (line: string) => void;
}

export interface Counterexample {
  readonly kind: ViolationKind;
  /** The case, one action per line, long strings abbreviated. */
  readonly actions: string;
  /** What went wrong when it last failed. */
  readonly details: readonly string[];
  readonly shrunk: boolean;
  /** fast-check's replay path (with the seed: `{ seed, path }`). */
  readonly path: string;
}

/** How often each distinct first violation of a kind per case was seen (its detail, normalised). */
export type Signatures = Readonly<Record<ViolationKind, ReadonlyMap<string, number>>>;

export interface FuzzReport {
  readonly seed: number;
  readonly cases: number;
  readonly failingCases: number;
  readonly requests: number;
  readonly proxiesStarted: number;
  readonly slowestMs: number;
  readonly elapsedMs: number;
  readonly counts: Readonly<Record<ViolationKind, number>>;
  readonly counterexamples: readonly Counterexample[];
  readonly signatures: Signatures;
}

/** A string as code: short ones quoted, repeated runs as "c".repeat(n), long ones cut. */
export function describeString(s: string): string {
  if (s.length <= 72) return JSON.stringify(s);
  const first = String.fromCodePoint(s.codePointAt(0)!);
  if (s === first.repeat(s.length / first.length)) return `${JSON.stringify(first)}.repeat(${s.length / first.length})`;
  const run = /^(.*?)(.)\2{40,}(.*)$/su.exec(s);
  if (run !== null && run[1]!.length < 72 && run[3]!.length < 72) {
    const n = s.length - run[1]!.length - run[3]!.length;
    return `${JSON.stringify(run[1])} + ${JSON.stringify(run[2])}.repeat(${n}) + ${JSON.stringify(run[3])}`;
  }
  return `${JSON.stringify(s.slice(0, 60))} + …(${s.length} chars)`;
}

export function describeValue(v: unknown): string {
  if (v instanceof Sym) return `<${v.name}>`;
  if (typeof v === 'string') return describeString(v);
  if (v instanceof Uint8Array) {
    const text = Buffer.from(v).toString('utf8');
    return Buffer.from(text, 'utf8').equals(Buffer.from(v)) ? `bytes(${describeString(text)})` : `bytes(hex ${describeString(Buffer.from(v).toString('hex'))})`;
  }
  if (Array.isArray(v)) return `[${v.map(describeValue).join(', ')}]`;
  if (typeof v === 'object' && v !== null) return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${describeValue(x)}`).join(', ')}}`;
  return Object.is(v, -0) ? '-0' : String(v);
}

export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'call': return `${a.method}(${a.args.map(describeValue).join(', ')})`;
    case 'raw': return `raw packet ${describeValue(a.data)}${a.fds > 0 ? ` with ${a.fds} fds` : ''}`;
    case 'burst': return `burst without waiting: ${a.calls.map((c) => `${c.method}(${c.args.map(describeValue).join(', ')})`).join('; ')}`;
    case 'session': return `verified session #${a.image} layers [${a.layers.join(', ')}]${a.raw ? ' (raw)' : ''}`;
    case 'shutdown': return 'Shutdown()';
  }
}

export function describeCase(actions: readonly Action[]): string {
  return actions.map((a, i) => `  ${i + 1}. ${describeAction(a)}`).join('\n');
}

/** A violation's detail without what differs between runs (temp paths, ids, sizes), cut short. */
function signature(detail: string, fx: Fixtures): string {
  return detail.split(fx.dir).join('<fixtures>').replace(/\/tmp\/layerpipe-stress-cwd-\w+/g, '<cwd>').replace(/\d{4,}/g, 'N').slice(0, 200);
}

export async function runFuzz(fx: Fixtures, options: FuzzRunOptions): Promise<FuzzReport> {
  const log = options.log ?? (() => undefined);
  const engine = new FuzzEngine(fx, options.engine ?? DEFAULT_ENGINE_OPTIONS);
  const started = Date.now();
  const countingEnds = started + options.budgetMs;
  const first = new Map<ViolationKind, { index: number; actions: readonly Action[]; details: string[] }>();
  const signatures = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, new Map<string, number>()])) as Record<ViolationKind, Map<string, number>>;
  let index = -1;
  const every = Math.max(1, Math.floor(options.runs / 20));
  await fc.check(fc.asyncProperty(caseArb(fx), async (actions) => {
    index++;
    if (Date.now() > countingEnds) return true;
    const violations = await engine.runCase(actions);
    for (const kind of new Set(violations.map((v) => v.kind))) {
      // The first of a kind in a case is the cause; the rest (requests queued behind a hang) follow from it.
      const sig = signature(violations.find((v) => v.kind === kind)!.detail, fx);
      signatures[kind].set(sig, (signatures[kind].get(sig) ?? 0) + 1);
      if (!first.has(kind)) first.set(kind, { index, actions, details: violations.filter((v) => v.kind === kind).map((v) => v.detail) });
    }
    if (engine.cases % every === 0) log(`${engine.cases} cases, ${engine.failingCases} failing, ${Math.round((Date.now() - started) / 1000)} s`);
    return true;
  }), { seed: options.seed, numRuns: options.runs });

  // Counts are of the counting phase; shrinking replays cases and must not add to them.
  const counted = { cases: engine.cases, failingCases: engine.failingCases, requests: engine.requests, counts: { ...engine.counts } };
  const counterexamples: Counterexample[] = [];
  const kinds = VIOLATION_KINDS.filter((k) => first.has(k));
  const perKindMs = kinds.length === 0 ? 0 : options.shrinkBudgetMs / kinds.length;
  for (const kind of kinds) {
    const found = first.get(kind)!;
    const shrinkEnds = Date.now() + perKindMs;
    let lastDetails: string[] = found.details;
    log(`shrinking a ${kind} counterexample (case ${found.index})`);
    // Node prints a given warning once per process: only a fresh proxy shows it again.
    engine.freshProxyPerCase = kind === 'stderr';
    const result = await fc.check(fc.asyncProperty(caseArb(fx), async (actions) => {
      if (Date.now() > shrinkEnds) return true;
      const violations: Violation[] = (await engine.runCase(actions)).filter((v) => v.kind === kind);
      if (violations.length > 0) lastDetails = violations.map((v) => v.detail);
      return violations.length === 0;
    }), { seed: options.seed, path: String(found.index), numRuns: options.runs });
    const reproduced = result.failed && result.counterexample !== null;
    const path = reproduced ? result.counterexamplePath ?? String(found.index) : String(found.index);
    counterexamples.push({
      kind,
      actions: describeCase(reproduced ? result.counterexample![0] : found.actions),
      details: reproduced ? lastDetails : found.details,
      // A path of one index means no shrink step succeeded (or there was no time for one).
      shrunk: path.includes(':'),
      path,
    });
  }
  engine.freshProxyPerCase = false;
  await engine.close();
  return {
    seed: options.seed, ...counted, proxiesStarted: engine.proxiesStarted, slowestMs: engine.slowestMs,
    elapsedMs: Date.now() - started, counterexamples, signatures,
  };
}

export function formatReport(r: FuzzReport): string {
  const lines = [
    `fuzz: ${r.cases} cases (${r.requests} requests) in ${(r.elapsedMs / 1000).toFixed(1)} s, seed ${r.seed}; ${r.failingCases} cases failed; ${r.proxiesStarted} proxies started; slowest reply ${r.slowestMs.toFixed(0)} ms`,
    `  crashes ${r.counts.crash}, hangs ${r.counts.hang}, oversize replies ${r.counts.oversize}, fd leaks ${r.counts.fdLeak}, malformed replies ${r.counts.malformedReply}, stack traces ${r.counts.stackTrace}, cwd leaks ${r.counts.cwdLeak}, wrong answers ${r.counts.wrongAnswer}, stderr output ${r.counts.stderr}`,
  ];
  for (const kind of VIOLATION_KINDS) {
    const top = [...r.signatures[kind].entries()].sort((a, b) => b[1] - a[1]);
    if (top.length === 0) continue;
    lines.push(`${kind}: ${top.length} distinct first violations per case; most frequent:`);
    for (const [sig, n] of top.slice(0, 6)) lines.push(`  ${String(n).padStart(5)} x ${sig}`);
  }
  for (const c of r.counterexamples) {
    lines.push(`counterexample for ${c.kind}${c.shrunk ? ' (shrunk)' : ' (as found, not shrunk within the time given)'}, replay with seed ${r.seed} path "${c.path}":`);
    lines.push(c.actions);
    for (const d of c.details.slice(0, 3)) lines.push(`  -> ${d}`);
  }
  return lines.join('\n');
}
