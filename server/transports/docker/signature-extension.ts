/**
 * The registry signature API extension (OpenShift's, which containers/image reads): a registry
 * whose /v2/ answer carries "X-Registry-Supports-Signatures: 1" lists the simple-signing
 * signatures of a manifest at GET /extensions/v2/REPO/signatures/DIGEST as
 * {"signatures":[{"schemaVersion":2,"type":"atomic","name":…,"content":BASE64}]}. When the
 * registry advertises it, containers/image reads signatures there instead of the lookaside;
 * entries of another version or type are skipped. The list is read through the image's own
 * registry client (its credentials, only to its origin) and bounded as a whole at 4 MiB, as
 * containers/image bounds it, so no signature in it can be larger than MAX_SIGNATURE_SIZE.
 */
import { UnsafeContentError } from '../../../protocol/errors';
import { parseDigest } from '../../image/digest';
import { MAX_SIGNATURE_SIZE, MAX_SIGNATURES, tooLargeSignature } from '../../image/signatures';
import type { RegistryClient } from './client';

/** containers/image's bound on the whole list body (iolimits.MaxSignatureListBodySize). */
export const MAX_SIGNATURE_LIST_SIZE = 4 * 1024 * 1024;
const SCHEMA_VERSION = 2;
const TYPE_ATOMIC = 'atomic';
/** Standard base64 with padding; line breaks are ignored, as Go's decoder ignores them. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The simple-signing blobs of a signature list body. Throws UnsafeContentError for a body
 * that is not such a list (saying what is wrong), and for more than MAX_SIGNATURES signatures.
 */
export function parseSignatureList(body: Buffer, where: string): Buffer[] {
  const bad = (why: string) => new UnsafeContentError(`${where}: decoding signature list: ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (doc === null) return [];
  if (!isObject(doc)) throw bad('not a JSON object');
  const entries = doc.signatures ?? [];
  if (!Array.isArray(entries)) throw bad('"signatures" is not an array');
  const out: Buffer[] = [];
  for (const [i, entry] of entries.entries()) {
    if (entry === null) continue;
    if (!isObject(entry)) throw bad(`signature ${i} is not an object`);
    const { schemaVersion, type, content } = entry;
    if (schemaVersion !== undefined && schemaVersion !== null && !Number.isSafeInteger(schemaVersion)) throw bad(`signature ${i}: "schemaVersion" is not an integer`);
    if (type !== undefined && type !== null && typeof type !== 'string') throw bad(`signature ${i}: "type" is not a string`);
    if (content !== undefined && content !== null && typeof content !== 'string') throw bad(`signature ${i}: "content" is not a base64 string`);
    const text = typeof content === 'string' ? content.replace(/[\r\n]/g, '') : '';
    if (!BASE64.test(text)) throw bad(`signature ${i}: "content" is not valid base64`);
    if (schemaVersion !== SCHEMA_VERSION || type !== TYPE_ATOMIC) continue;
    if (out.length >= MAX_SIGNATURES) throw new UnsafeContentError(`${where}: more than ${MAX_SIGNATURES} signatures`);
    const blob = Buffer.from(text, 'base64');
    if (blob.length > MAX_SIGNATURE_SIZE) throw tooLargeSignature(where);
    out.push(blob);
  }
  return out;
}

/** The simple-signing signatures the registry's extension lists for manifest `digest` of `repository`. */
export async function readExtensionSignatures(client: RegistryClient, repository: string, digest: string, signal: AbortSignal): Promise<Buffer[]> {
  parseDigest(digest);
  const body = await client.getSignatureList(repository, digest, MAX_SIGNATURE_LIST_SIZE, signal);
  return parseSignatureList(body, `${client.endpoint.registry}/${repository}@${digest}`);
}
