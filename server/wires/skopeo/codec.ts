/** The skopeo wire's packets: one JSON request object in, one five-key reply object out. */
import { errorMessage, InvalidArgumentError } from '../../../protocol/errors';
import type { Reply } from '../../../protocol/methods';
import { skopeoErrorCode } from './error-code';

export interface DecodedRequest {
  readonly method: string;
  readonly args: readonly unknown[];
}

/** Decodes a request packet the way skopeo does: an object with a method and an args array. */
export function decodeRequest(data: Buffer): DecodedRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`invalid request: ${errorMessage(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('invalid request: expected a JSON object');
  }
  const { method, args } = parsed as { method?: unknown; args?: unknown };
  if (method !== undefined && typeof method !== 'string') throw new InvalidArgumentError('invalid request: "method" must be a string');
  if (args !== undefined && args !== null && !Array.isArray(args)) throw new InvalidArgumentError('invalid request: "args" must be an array');
  return { method: method ?? '', args: (args as unknown[] | null | undefined) ?? [] };
}

/**
 * Longest error text sent. Messages quote only short prefixes of input (clipInput), so this is
 * a backstop: even escaped six-fold by JSON, the reply stays under the wire's 32 KiB.
 */
const MAX_ERROR_TEXT = 4096;

function errorText(err: unknown): string {
  const text = errorMessage(err);
  return text.length <= MAX_ERROR_TEXT ? text : `${text.slice(0, MAX_ERROR_TEXT)}… (message cut at ${MAX_ERROR_TEXT} characters)`;
}

export function encodeReply(outcome: { value: unknown; pipeid: number } | { error: unknown }): Buffer {
  const reply: Reply = 'error' in outcome
    ? { success: false, value: null, pipeid: 0, error_code: skopeoErrorCode(outcome.error), error: errorText(outcome.error) }
    : { success: true, value: outcome.value ?? null, pipeid: outcome.pipeid, error_code: '', error: '' };
  return Buffer.from(JSON.stringify(reply));
}
