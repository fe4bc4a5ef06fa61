/**
 * Reading simple-signing signatures of a docker image from its lookaside location
 * (containers-registries.d(5)): BASE/REPO@ALG=HEX/signature-N, N = 1, 2, … until the first
 * one missing. file:// bases are read from disk, http:// and https:// ones fetched; any
 * other scheme is an error. Sizes and counts are bounded (server/image/signatures.ts).
 */
import { promises as fsp } from 'node:fs';
import { InvalidConfigError, LayerpipeError, systemCode, systemErrorText } from '../../../protocol/errors';
import { parseDigest } from '../../image/digest';
import { MAX_SIGNATURE_SIZE, readNumberedSignatures, tooLargeSignature } from '../../image/signatures';

const HTTP_TIMEOUT_MS = 30_000;

/** The URL of signature `index` of manifest `digest` of repository path `name` ("ns/repo", no host). */
export function signatureUrl(base: URL, name: string, digest: string, index: number): URL {
  const d = parseDigest(digest);
  const u = new URL(base.href);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${name}@${d.algorithm}=${d.hex}/signature-${index}`;
  return u;
}

async function readLocal(file: string, where: string): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await fsp.open(file, 'r'); // node:fs/promises loads here, not with the open path's chunk
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return undefined;
    throw new LayerpipeError(`reading signature ${where}: ${systemErrorText(err)}`, { cause: err });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new LayerpipeError(`reading signature ${where}: not a regular file`);
    if (stat.size > MAX_SIGNATURE_SIZE) throw tooLargeSignature(where);
    const buf = Buffer.alloc(MAX_SIGNATURE_SIZE + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
      if (got > MAX_SIGNATURE_SIZE) throw tooLargeSignature(where);
    }
    return Buffer.from(buf.subarray(0, got));
  } finally {
    await handle.close();
  }
}

async function readHttp(url: URL, signal: AbortSignal): Promise<Buffer | undefined> {
  // undici's index (its whole API) loads only for an http(s) lookaside; file:// ones are the common case.
  const { request } = require('undici') as typeof import('undici');
  const res = await request(url, { method: 'GET', signal, headersTimeout: HTTP_TIMEOUT_MS, bodyTimeout: HTTP_TIMEOUT_MS });
  if (res.statusCode === 404) {
    await res.body.dump();
    return undefined;
  }
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new LayerpipeError(`reading signature from ${url.origin}${url.pathname}: status ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_SIGNATURE_SIZE) {
      res.body.destroy();
      throw tooLargeSignature(`${url.origin}${url.pathname}`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** All signatures of manifest `digest` of `name` under the lookaside `base`. */
export async function readLookasideSignatures(base: string, name: string, digest: string, signal: AbortSignal): Promise<Buffer[]> {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new InvalidConfigError(`registries.d: lookaside ${JSON.stringify(base)} is not a URL`);
  }
  const where = `${name}@${digest}`;
  switch (url.protocol) {
    case 'file:':
      return readNumberedSignatures(where, (i) => {
        const u = signatureUrl(url, name, digest, i);
        return readLocal(decodeURIComponent(u.pathname), u.pathname);
      });
    case 'http:':
    case 'https:':
      return readNumberedSignatures(where, (i) => readHttp(signatureUrl(url, name, digest, i), signal));
    default:
      throw new InvalidConfigError(`registries.d: lookaside ${JSON.stringify(base)}: unsupported scheme ${url.protocol} (file, http and https are)`);
  }
}
