/**
 * Runs fuzz cases against one long-lived proxy and checks, after every case, what must always
 * hold: the proxy is alive and answers a valid session correctly, every reply was well-formed
 * (reply-checks.ts), no request took longer than the time limit, the proxy wrote nothing on
 * stderr, and its fd count came back to its baseline once the case's pipes and images were
 * released. A proxy that crashed, hung past the grace period or was shut down is replaced.
 */
import { native } from '../../protocol/seqpacket/native';
import { Sym, type Action } from './arbitraries';
import { CheckedClient, probe, verifiedSession, type Answer } from './checked-client';
import type { Fixtures } from './fixtures';
import { closeFds, StressProxy } from './proxy-process';
import { excerpt, VIOLATION_KINDS, type Violation, type ViolationKind } from './reply-checks';

export interface EngineOptions {
  /** A request slower than this is a hang. */
  readonly timeoutMs: number;
  /** After a hang, how long late replies may take before the proxy is replaced. */
  readonly graceMs: number;
  /** How long the fd count may take to come back to its baseline after a case. */
  readonly fdSettleMs: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = { timeoutMs: 2000, graceMs: 1500, fdSettleMs: 2000 };

/**
 * Registry retries are designed behaviour (5 attempts, about 7.5 s on a refused port), not a
 * hang: one attempt keeps docker:// references inside the time limit.
 */
const PROXY_ENV = { LAYERPIPE_RETRY_ATTEMPTS: '1' } as const;

/** The fds in `now` that were not there at the baseline (as a multiset: pipes share names). */
function withoutBaseline(now: readonly string[], baseline: readonly string[]): string[] {
  const left = [...baseline];
  return now.filter((t) => {
    const i = left.indexOf(t);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What the "method" of a packet is, for reply checks, when it parses. */
function methodOf(data: Uint8Array): string | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(data).toString('utf8'));
    const method = (parsed as { method?: unknown } | null)?.method;
    return typeof method === 'string' ? method : undefined;
  } catch {
    return undefined;
  }
}

export class FuzzEngine {
  readonly counts: Record<ViolationKind, number> = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>;
  cases = 0;
  failingCases = 0;
  requests = 0;
  proxiesStarted = 0;
  slowestMs = 0;
  /** Every case on a proxy of its own: for what happens once per process (a warning on stderr). */
  freshProxyPerCase = false;
  private proxy: StressProxy | undefined;
  private baselineFds = 0;
  private baselineTargets: string[] = [];
  private stderrSeen = 0;
  private unsolicitedSeen = 0;

  constructor(
    private readonly fx: Fixtures,
    private readonly options: EngineOptions = DEFAULT_ENGINE_OPTIONS,
  ) {}

  /** Runs one case; the violations it caused (also added to the counts). */
  async runCase(actions: readonly Action[]): Promise<Violation[]> {
    const violations: Violation[] = [];
    const record = (v: Violation): void => {
      violations.push(v);
      this.counts[v.kind]++;
    };
    this.cases++;
    if (this.freshProxyPerCase) await this.retire();
    const proxy = await this.ensureProxy(record);
    if (proxy !== undefined) await this.runOn(proxy, actions, record);
    if (violations.length > 0) this.failingCases++;
    return violations;
  }

  /** Ends the run: the proxy must exit 0 at end of stream. */
  async close(): Promise<void> {
    const proxy = this.proxy;
    this.proxy = undefined;
    if (proxy === undefined || !proxy.alive) return;
    const status = await proxy.close();
    if (status.code !== 0) this.counts.crash++;
  }

  private async runOn(proxy: StressProxy, actions: readonly Action[], record: (v: Violation) => void): Promise<void> {
    const client = new CheckedClient(proxy, this.options.timeoutMs, record);
    const ids = { lastImage: 0, lastPipe: 0 };
    const resolve = (args: readonly unknown[]): unknown[] => args.map((a) => (a instanceof Sym ? ids[a.name] : a));
    const note = (answer: Answer | undefined, method: string | undefined): void => {
      if (answer === undefined || !answer.reply.success) return;
      if (answer.reply.pipeid !== 0) ids.lastPipe = answer.reply.pipeid;
      if ((method === 'OpenImage' || method === 'OpenImageOptional') && typeof answer.reply.value === 'number' && answer.reply.value > 0) ids.lastImage = answer.reply.value;
    };
    let shutDown = false;
    for (const action of actions) {
      if (action.kind === 'call') {
        note(await client.call(action.method, resolve(action.args)), action.method);
      } else if (action.kind === 'burst') {
        const answers = await Promise.all(action.calls.map((c) => client.call(c.method, resolve(c.args))));
        answers.forEach((a, i) => note(a, action.calls[i]!.method));
      } else if (action.kind === 'raw') {
        note(await this.sendRaw(client, action.data, action.fds), methodOf(action.data));
      } else if (action.kind === 'session') {
        await verifiedSession(client, this.fx.images[action.image]!, action.layers, action.raw);
      } else {
        await this.shutdown(proxy, client, record);
        shutDown = true;
      }
      if (client.dead || client.stalled || shutDown) break;
    }
    this.requests += client.requests;
    this.slowestMs = Math.max(this.slowestMs, client.slowestMs);
    if (shutDown || client.dead) {
      await this.retire();
      return;
    }
    if (client.stalled && !(await this.caughtUp(proxy))) {
      await this.retire();
      return;
    }
    client.stalled = false;
    await client.release();
    await probe(client, this.fx.oci);
    if (client.dead || client.stalled) {
      await this.retire();
      return;
    }
    await this.checkFds(proxy, record);
    this.checkStderr(proxy, record);
  }

  /** A raw packet, with `fdCount` pipe read ends attached (their write ends closed at once). */
  private async sendRaw(client: CheckedClient, data: Uint8Array, fdCount: number): Promise<Answer | undefined> {
    const fds: number[] = [];
    for (let i = 0; i < fdCount; i++) {
      const [readEnd, writeEnd] = native.pipe();
      closeFds([writeEnd]);
      fds.push(readEnd);
    }
    try {
      return await client.send(Buffer.from(data), methodOf(data), fds);
    } catch (err) {
      // The client's own socket refusing a packet this large says nothing about the proxy.
      if ((err as { code?: unknown }).code === 'EMSGSIZE') return undefined;
      throw err;
    }
  }

  /** Shutdown: no reply, exit status 0, nothing on stderr, even with transfers in flight. */
  private async shutdown(proxy: StressProxy, client: CheckedClient, record: (v: Violation) => void): Promise<void> {
    proxy.send(Buffer.from('{"method":"Shutdown","args":[]}')).then(
      (reply) => {
        closeFds(reply.fds);
        record({ kind: 'malformedReply', detail: `Shutdown was answered: ${excerpt(reply.data.toString('utf8'))}` });
      },
      () => undefined,
    );
    const status = await Promise.race([proxy.waitExit(), sleep(this.options.timeoutMs).then(() => null)]);
    if (status === null) record({ kind: 'hang', detail: `Shutdown: the proxy had not exited after ${this.options.timeoutMs} ms` });
    else if (status.code !== 0) record({ kind: 'crash', detail: `Shutdown: exit code ${status.code}, signal ${status.signal}; stderr ${excerpt(proxy.stderr, 400)}` });
    this.checkStderr(proxy, record);
    client.dead = true;
  }

  /** After a hang: did every late reply come within the grace period? */
  private async caughtUp(proxy: StressProxy): Promise<boolean> {
    const until = Date.now() + this.options.graceMs;
    while (proxy.outstanding > 0 && proxy.alive && Date.now() < until) await sleep(20);
    return proxy.outstanding === 0 && proxy.alive;
  }

  private async checkFds(proxy: StressProxy, record: (v: Violation) => void): Promise<void> {
    const until = Date.now() + this.options.fdSettleMs;
    let count = proxy.fdCount();
    while (count > this.baselineFds && Date.now() < until) {
      await sleep(20);
      count = proxy.fdCount();
    }
    if (count > this.baselineFds) {
      const extra = withoutBaseline(proxy.fdTargets(), this.baselineTargets);
      record({ kind: 'fdLeak', detail: `the proxy holds ${count} fds after the case, baseline ${this.baselineFds}: extra ${extra.slice(0, 8).join(', ')}` });
      // Judge the next case on its own.
      this.baselineFds = count;
      this.baselineTargets = proxy.fdTargets();
    } else if (count < this.baselineFds) {
      this.baselineFds = count;
      this.baselineTargets = proxy.fdTargets();
    }
  }

  private checkStderr(proxy: StressProxy, record: (v: Violation) => void): void {
    const text = proxy.stderr;
    if (text.length > this.stderrSeen) record({ kind: 'stderr', detail: `the proxy wrote on stderr: ${excerpt(text.slice(this.stderrSeen), 400)}` });
    this.stderrSeen = text.length;
    if (proxy.unsolicited > this.unsolicitedSeen) record({ kind: 'malformedReply', detail: `${proxy.unsolicited - this.unsolicitedSeen} replies answered no request` });
    this.unsolicitedSeen = proxy.unsolicited;
  }

  /**
   * A proxy ready for a case: started, initialised, and warmed up on every transport (so
   * modules loaded on first use count neither as a hang nor in the fd baseline).
   */
  private async ensureProxy(record: (v: Violation) => void): Promise<StressProxy | undefined> {
    if (this.proxy?.alive === true) return this.proxy;
    await this.retire();
    const proxy = await StressProxy.start({ env: PROXY_ENV });
    this.proxiesStarted++;
    this.stderrSeen = 0;
    this.unsolicitedSeen = 0;
    // Loading every transport may take longer than a request's limit on a busy machine.
    const client = new CheckedClient(proxy, Math.max(this.options.timeoutMs, 15_000), record);
    await client.call('Initialize', []);
    for (const image of this.fx.images) {
      await verifiedSession(client, image, [0, 1]);
      await verifiedSession(client, image, [1], true);
    }
    await client.call('OpenImage', [`docker://127.0.0.1:${this.fx.refusedPort}/warm-up:latest`]);
    await client.release();
    if (client.dead || client.stalled) {
      await proxy.kill();
      return undefined;
    }
    await sleep(50);
    this.baselineFds = proxy.fdCount();
    this.baselineTargets = proxy.fdTargets();
    this.proxy = proxy;
    return proxy;
  }

  private async retire(): Promise<void> {
    const proxy = this.proxy;
    this.proxy = undefined;
    if (proxy === undefined) return;
    if (proxy.alive) await proxy.kill();
    else await proxy.close(1000);
  }
}
