/**
 * What every reply must be, whatever was asked: a JSON object with exactly the five keys, in
 * the types PROTOCOL.md gives, with fds and pipeid matching the method's data kind, no larger
 * than MAX_MESSAGE_SIZE (except GetLayerInfo's inline list), and revealing nothing of the
 * server (no stack trace, not its working directory).
 */
import { ERROR_CODES, isMethodName, MAX_MESSAGE_SIZE, METHODS } from '../../protocol/methods';
import type { Packet } from '../../protocol/seqpacket/socket';

export const VIOLATION_KINDS = [
  'crash', 'hang', 'oversize', 'malformedReply', 'stackTrace', 'cwdLeak', 'wrongAnswer', 'fdLeak', 'stderr',
] as const;
export type ViolationKind = (typeof VIOLATION_KINDS)[number];

export interface Violation {
  readonly kind: ViolationKind;
  readonly detail: string;
}

/** A reply that passed the structural checks. The caller owns `fds`. */
export interface WireReply {
  readonly success: boolean;
  readonly value: unknown;
  readonly pipeid: number;
  readonly errorCode: string;
  readonly error: string;
  readonly fds: number[];
  /** Size of the packet. */
  readonly bytes: number;
}

const REPLY_KEYS = ['error', 'error_code', 'pipeid', 'success', 'value'];
/** How a V8 stack frame starts: the brief's marker of an internal error leaking out. */
const STACK_FRAME = '    at ';

/** Shortens text for a report: long inputs are the norm here. */
export function excerpt(text: string, max = 160): string {
  const printable = JSON.stringify(text);
  return printable.length <= max ? printable : `${printable.slice(0, max)}…(${text.length} chars)`;
}

export interface ReplyContext {
  /** The request's method as sent (any string, or undefined for a packet with none). */
  readonly method: string | undefined;
  /** The request packet as text: what the reply may legitimately echo. */
  readonly requestText: string;
  /** The proxy's working directory. */
  readonly cwd: string;
}

function expectedFds(method: string | undefined): { fds: number; pipe: boolean } {
  if (method === undefined || !isMethodName(method)) return { fds: 0, pipe: false };
  const kind = METHODS[method].data;
  if (kind === 'pipe') return { fds: 1, pipe: true };
  if (kind === 'dataAndErrorPipes') return { fds: 2, pipe: false };
  return { fds: 0, pipe: false };
}

/** Checks one reply; `reply` is undefined when it is not even a five-key object. */
export function checkReply(packet: Packet, ctx: ReplyContext): { reply: WireReply | undefined; violations: Violation[] } {
  const violations: Violation[] = [];
  const label = ctx.method === undefined ? '(no method)' : ctx.method.length <= 40 ? ctx.method : excerpt(ctx.method, 40);
  const add = (kind: ViolationKind, detail: string): void => {
    violations.push({ kind, detail: `${label}: ${detail}` });
  };
  const text = packet.data.toString('utf8');
  let parsed: unknown;
  let parses = true;
  try {
    parsed = JSON.parse(text);
  } catch {
    parses = false;
  }
  // Reports quote the error text when there is one: the rest of a reply is always the same.
  const quoted = (parsed as { error?: unknown } | undefined)?.error;
  const shown = typeof quoted === 'string' && quoted !== '' ? `error ${excerpt(quoted, 300)}` : excerpt(text, 300);
  if (packet.truncated) add('oversize', `reply longer than the client's 8 MiB receive buffer`);
  if (text.includes(STACK_FRAME) && !ctx.requestText.includes(STACK_FRAME)) add('stackTrace', `reply carries a stack trace: ${shown}`);
  if (text.includes(ctx.cwd) && !ctx.requestText.includes(ctx.cwd)) add('cwdLeak', `reply reveals the server's working directory: ${shown}`);
  if (!parses) {
    add('malformedReply', `reply is not JSON: ${excerpt(text)}`);
    return { reply: undefined, violations };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    add('malformedReply', `reply is not an object: ${excerpt(text)}`);
    return { reply: undefined, violations };
  }
  const keys = Object.keys(parsed).sort();
  if (keys.join(',') !== REPLY_KEYS.join(',')) add('malformedReply', `reply keys are [${keys.join(', ')}]`);
  const r = parsed as Record<string, unknown>;
  const { success, value, pipeid, error_code: errorCode, error } = r;
  if (typeof success !== 'boolean' || typeof pipeid !== 'number' || !Number.isSafeInteger(pipeid) || pipeid < 0
    || typeof errorCode !== 'string' || typeof error !== 'string') {
    add('malformedReply', `reply members have the wrong types: ${excerpt(text)}`);
    return { reply: undefined, violations };
  }
  const expected = expectedFds(ctx.method);
  if (success) {
    if (error !== '' || errorCode !== '') add('malformedReply', `success with an error: ${excerpt(text)}`);
    if (packet.fds.length !== expected.fds) add('malformedReply', `success with ${packet.fds.length} fds, expected ${expected.fds}`);
    if (expected.pipe !== (pipeid !== 0)) add('malformedReply', `success with pipeid ${pipeid}`);
  } else {
    if (value !== null || pipeid !== 0 || packet.fds.length !== 0) add('malformedReply', `failure with value/pipeid/fds: ${excerpt(text)} (${packet.fds.length} fds)`);
    if (error === '') add('malformedReply', 'failure with an empty error');
    if (!(ERROR_CODES as readonly string[]).includes(errorCode)) add('malformedReply', `failure with error_code ${JSON.stringify(errorCode)}`);
  }
  const inlineList = ctx.method === 'GetLayerInfo' && success;
  if (packet.data.length > MAX_MESSAGE_SIZE && !inlineList) add('oversize', `reply of ${packet.data.length} bytes (> ${MAX_MESSAGE_SIZE}): ${shown}`);
  return { reply: { success, value, pipeid, errorCode, error, fds: packet.fds, bytes: packet.data.length }, violations };
}
