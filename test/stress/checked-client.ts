/**
 * A client that checks every reply it gets (reply-checks.ts), times every request, drains every
 * pipe it is handed at once (so no FinishPipe, fuzzed or not, can wait on a reader that never
 * comes), and remembers the images and pipes it was given so they can be released afterwards.
 * Verified sessions (open, layer info, blobs read and hashed, close) live here too.
 */
import { createHash } from 'node:crypto';
import { pipeReadable } from '../../clients/typescript/pipes';
import type { FixtureImage } from './fixtures';
import { ProxyGoneError, ReplyTimeoutError, type StressProxy } from './proxy-process';
import { checkReply, excerpt, type Violation, type ViolationKind, type WireReply } from './reply-checks';

/** What a drained pipe gave: its bytes (up to a cap) and its total length. */
export interface Drained {
  readonly data: Buffer;
  readonly length: number;
}

/** Kept per pipe; more is counted but not kept (fuzzed GetBlob sizes are arbitrary). */
const DRAIN_KEEP_BYTES = 4 * 1024 * 1024;

export function drainFd(fd: number): Promise<Drained> {
  return new Promise((resolve) => {
    const stream = pipeReadable(fd);
    const chunks: Buffer[] = [];
    let length = 0;
    stream.on('data', (chunk: Buffer) => {
      if (length + chunk.length <= DRAIN_KEEP_BYTES) chunks.push(chunk);
      length += chunk.length;
    });
    const done = (): void => resolve({ data: Buffer.concat(chunks), length });
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
  });
}

export interface Answer {
  readonly reply: WireReply;
  /** One per fd of the reply, already draining. */
  readonly pipes: Promise<Drained>[];
  readonly ms: number;
}

export class CheckedClient {
  /** Image ids the proxy handed out (closed again by release()). */
  readonly images = new Set<number>();
  /** Pipe ids not yet finished by this client. */
  readonly pipeIds = new Set<number>();
  private readonly drains: Promise<Drained>[] = [];
  /** A request timed out: replies may still be on their way. */
  stalled = false;
  /** The proxy is gone. */
  dead = false;
  requests = 0;
  slowestMs = 0;

  constructor(
    readonly proxy: StressProxy,
    readonly timeoutMs: number,
    private readonly record: (v: Violation) => void,
  ) {}

  violation(kind: ViolationKind, detail: string): void {
    this.record({ kind, detail });
  }

  /**
   * Sends a packet and checks its reply; undefined when there is no usable reply (recorded).
   * With `drain` false the reply's fds are the caller's, untouched (for clients that abandon them).
   */
  async send(data: Buffer, method: string | undefined, fds: readonly number[] = [], drain = true): Promise<Answer | undefined> {
    if (this.dead) return undefined;
    this.requests++;
    const requestText = data.toString('utf8');
    const label = method === undefined ? '(raw packet)' : excerpt(method, 40);
    let timed;
    try {
      timed = await this.proxy.request(data, this.timeoutMs, fds);
    } catch (err) {
      if (err instanceof ReplyTimeoutError) {
        this.stalled = true;
        this.violation('hang', `${label}: no reply within ${err.ms} ms to ${excerpt(requestText, 300)}`);
      } else if (err instanceof ProxyGoneError) {
        await this.noteDeath(`${label} ${excerpt(requestText, 300)}`);
      } else {
        throw err;
      }
      return undefined;
    }
    this.slowestMs = Math.max(this.slowestMs, timed.ms);
    const { reply, violations } = checkReply(timed.packet, { method, requestText, cwd: this.proxy.cwd });
    for (const v of violations) this.record({ kind: v.kind, detail: `${v.detail} [request ${excerpt(requestText, 160)}]` });
    const pipes = drain ? timed.packet.fds.map((fd) => drainFd(fd)) : [];
    this.drains.push(...pipes);
    if (reply === undefined) return undefined;
    if (reply.success && reply.pipeid !== 0) this.pipeIds.add(reply.pipeid);
    if (reply.success && (method === 'OpenImage' || method === 'OpenImageOptional') && typeof reply.value === 'number' && reply.value > 0) {
      this.images.add(reply.value);
    }
    return { reply, pipes, ms: timed.ms };
  }

  async call(method: string, args: readonly unknown[]): Promise<Answer | undefined> {
    const answer = await this.send(Buffer.from(JSON.stringify({ method, args })), method);
    // Only a call that succeeded let go of its id: CloseImage(id, extra) fails and the image stays open.
    if (answer?.reply.success === true && typeof args[0] === 'number') {
      if (method === 'FinishPipe') this.pipeIds.delete(args[0]);
      if (method === 'CloseImage') this.images.delete(args[0]);
    }
    return answer;
  }

  /** A call that must succeed; records wrongAnswer otherwise. */
  async expectSuccess(method: string, args: readonly unknown[], what: string): Promise<Answer | undefined> {
    const answer = await this.call(method, args);
    if (answer !== undefined && !answer.reply.success) this.violation('wrongAnswer', `${what}: ${method} failed: ${excerpt(answer.reply.error, 300)}`);
    return answer?.reply.success === true ? answer : undefined;
  }

  /**
   * Finishes every pipe and closes every image this client was given and did not release yet;
   * waits for every drain. FinishPipe fails for a pipe a fuzzed call finished (the server drops
   * it either way), which is fine: the tracking ends here.
   */
  async release(): Promise<void> {
    for (const id of [...this.pipeIds]) await this.call('FinishPipe', [id]);
    for (const id of [...this.images]) await this.call('CloseImage', [id]);
    this.pipeIds.clear();
    this.images.clear();
    await this.settleDrains();
  }

  /** Waits for the pipes handed out so far to reach their end (the proxy closes its write ends). */
  async settleDrains(limitMs = this.timeoutMs): Promise<boolean> {
    const all = Promise.all(this.drains.splice(0)).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), limitMs);
    });
    const ok = await Promise.race([all, late]);
    clearTimeout(timer);
    if (!ok) this.violation('hang', `a pipe handed out did not reach its end within ${limitMs} ms after FinishPipe/CloseImage`);
    return ok;
  }

  private async noteDeath(during: string): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    const status = await Promise.race([this.proxy.waitExit(), new Promise<null>((resolve) => setTimeout(() => resolve(null), 2000))]);
    const how = status === null ? 'closed its socket' : `exited (code ${status.code}, signal ${status.signal})`;
    this.violation('crash', `the proxy ${how} during ${during}; stderr: ${excerpt(this.proxy.stderr.trim(), 600)}`);
  }
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * A correct session on `image`: OpenImage, GetLayerInfo as expected, then for each chosen layer
 * GetBlob (or GetRawBlob) read fully while FinishPipe waits, bytes hashed and compared, then
 * CloseImage. Any deviation is recorded as wrongAnswer; true when everything matched.
 */
export async function verifiedSession(client: CheckedClient, image: FixtureImage, layerIndexes: readonly number[], raw = false): Promise<boolean> {
  const what = `verified session on ${image.transport}`;
  let ok = true;
  const wrong = (detail: string): void => {
    ok = false;
    client.violation('wrongAnswer', `${what}: ${detail}`);
  };
  const opened = await client.expectSuccess('OpenImage', [image.ref], what);
  if (opened === undefined || typeof opened.reply.value !== 'number' || opened.reply.value <= 0) {
    if (opened !== undefined) wrong(`OpenImage answered ${JSON.stringify(opened.reply.value)}`);
    return false;
  }
  const id = opened.reply.value;
  const info = await client.expectSuccess('GetLayerInfo', [id], what);
  const expected = image.layers.map((l) => `${l.digest}/${l.size}`).join(',');
  const got = Array.isArray(info?.reply.value)
    ? (info.reply.value as { digest?: unknown; size?: unknown }[]).map((l) => `${String(l.digest)}/${String(l.size)}`).join(',')
    : undefined;
  if (info !== undefined && got !== expected) wrong(`GetLayerInfo answered ${got ?? 'a non-list'}, expected ${expected}`);
  for (const index of layerIndexes) {
    const layer = image.layers[index % image.layers.length]!;
    if (raw) {
      const blob = await client.expectSuccess('GetRawBlob', [id, layer.digest], what);
      if (blob === undefined) { ok = false; continue; }
      const [data, error] = await Promise.all(blob.pipes);
      if (data === undefined || sha256(data.data) !== layer.digest) wrong(`GetRawBlob ${layer.digest}: ${data?.length ?? 0} bytes that do not hash to the digest`);
      if (error !== undefined && error.length !== 0) wrong(`GetRawBlob ${layer.digest}: error pipe says ${excerpt(error.data.toString('utf8'))}`);
      continue;
    }
    const blob = await client.expectSuccess('GetBlob', [id, layer.digest, layer.size], what);
    if (blob === undefined) { ok = false; continue; }
    if (blob.reply.value !== layer.size) wrong(`GetBlob ${layer.digest}: value ${JSON.stringify(blob.reply.value)}, expected ${layer.size}`);
    const finished = client.expectSuccess('FinishPipe', [blob.reply.pipeid], what);
    const [data] = await Promise.all([blob.pipes[0], finished]);
    if (data === undefined || data.length !== layer.size || sha256(data.data) !== layer.digest) {
      wrong(`GetBlob ${layer.digest}: got ${data?.length ?? 0} bytes, expected ${layer.size} hashing to the digest`);
    }
    if ((await finished) === undefined) ok = false;
  }
  if ((await client.expectSuccess('CloseImage', [id], what)) === undefined) ok = false;
  return ok;
}

/** "Alive and answers a valid request correctly": open the OCI fixture, list its layers, close it. */
export async function probe(client: CheckedClient, image: FixtureImage): Promise<boolean> {
  if (client.dead || client.stalled) return false;
  return verifiedSession(client, image, []);
}
