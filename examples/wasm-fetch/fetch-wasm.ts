/**
 * Fetches a WebAssembly module stored as an OCI artifact through the image-proxy wire, compiles
 * it and calls one of its exports:
 *
 *   node dist/examples/wasm-fetch/fetch-wasm.js IMAGEREF [--export NAME] [--args 1,2]
 *        [--proxy CMD] [--proxy-arg ARG]... [--blob-method auto|raw|verified]
 *
 * Only OpenImage, GetManifest and GetRawBlob (or GetBlob) are used: GetFullConfig parses an
 * OCI image config, which an artifact does not have.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { defaultProxyCommand, ImageProxy, METHODS, ProxyError } from '../../clients/typescript';
import { DigestMismatchError, InvalidArgumentError, LayerpipeError, UnsupportedError } from '../../protocol/errors';
import { WASM_LAYER_TYPES, type Descriptor } from './artifact';
import { callExport, compileWasm, parseNumericArgs, wasmExports, type WasmModule, type WasmNumber } from './wasm-runtime';

/** `raw`: GetRawBlob, verified here; `verified`: GetBlob, verified by the proxy and here; `auto`: raw when the proxy has it. */
export type BlobMethod = 'auto' | 'raw' | 'verified';

export interface FetchOptions {
  blobMethod?: BlobMethod;
  /** Refuse modules larger than this many bytes (before reading any). Default 256 MiB. */
  maxBytes?: number;
}

export interface FetchedWasm {
  readonly module: WasmModule;
  readonly bytes: Buffer;
  readonly layer: Descriptor;
  /** Digest of the manifest as stored (GetManifest's value). */
  readonly manifestDigest: string;
  /** The manifest's artifactType, else its config's media type. */
  readonly artifactType: string;
  readonly blobMethod: 'GetRawBlob' | 'GetBlob';
}

const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;
const DIGEST_PATTERN = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new UnsupportedError(`manifest ${where} is not a descriptor object`);
  const { mediaType, digest, size } = value;
  if (typeof digest !== 'string' || !DIGEST_PATTERN.test(digest)) {
    throw new UnsupportedError(`manifest ${where}: digest ${JSON.stringify(digest)} is not a sha256 or sha512 digest`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new UnsupportedError(`manifest ${where}: invalid size ${JSON.stringify(size)}`);
  return { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
}

interface ParsedManifest {
  readonly artifactType: string;
  readonly layers: Descriptor[];
}

function parseManifest(bytes: Buffer): ParsedManifest {
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new UnsupportedError(`GetManifest did not return JSON: ${(err as Error).message}`);
  }
  if (!isObject(m) || !Array.isArray(m.layers)) throw new UnsupportedError('GetManifest did not return an image manifest (no "layers" array)');
  const config = parseDescriptor(m.config, 'config');
  const artifactType = typeof m.artifactType === 'string' && m.artifactType !== '' ? m.artifactType : config.mediaType;
  return { artifactType, layers: m.layers.map((l, i) => parseDescriptor(l, `layer ${i}`)) };
}

/** Picks the first layer whose media type is a wasm one; an error listing what is there otherwise. */
export function findWasmLayer(layers: readonly Descriptor[], imageRef: string): Descriptor {
  const layer = layers.find((l) => WASM_LAYER_TYPES.includes(l.mediaType));
  if (layer !== undefined) return layer;
  const found = layers.length === 0 ? 'no layers' : `layers of type ${[...new Set(layers.map((l) => l.mediaType || '(none)'))].join(', ')}`;
  throw new UnsupportedError(`${imageRef} has no WebAssembly layer (media type ${WASM_LAYER_TYPES.join(' or ')}); it has ${found}`);
}

/** The hash `digest` names, or an error for an algorithm this example does not check. */
function hasherFor(digest: string): Hash {
  return createHash(digest.startsWith('sha512:') ? 'sha512' : 'sha256');
}

/**
 * Reads exactly `layer.size` bytes from `stream` while hashing them. Stops (destroying the
 * stream) as soon as more arrive; a short stream or a different digest is a DigestMismatchError.
 */
async function readVerified(stream: Readable, layer: Descriptor): Promise<Buffer> {
  const hash = hasherFor(layer.digest);
  const out = Buffer.allocUnsafe(layer.size);
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (total + chunk.length > layer.size) {
      stream.destroy();
      throw new DigestMismatchError(`wasm layer ${layer.digest}: the proxy sent more than the ${layer.size} bytes the manifest declares`);
    }
    chunk.copy(out, total);
    hash.update(chunk);
    total += chunk.length;
  }
  if (total !== layer.size) {
    throw new DigestMismatchError(`wasm layer ${layer.digest}: got ${total} bytes, the manifest declares ${layer.size}`);
  }
  const actual = `${layer.digest.slice(0, layer.digest.indexOf(':'))}:${hash.digest('hex')}`;
  if (actual !== layer.digest) {
    throw new DigestMismatchError(`wasm layer digest mismatch: expected ${layer.digest}, got ${actual}`);
  }
  return out;
}

/** Our own check's error wins over the proxy's report of the same fault (its wording varies). */
function firstFailure(read: PromiseSettledResult<Buffer>, transfer: PromiseSettledResult<unknown>): Error | null {
  if (read.status === 'rejected' && read.reason instanceof DigestMismatchError) return read.reason;
  if (transfer.status === 'rejected') return transfer.reason as Error;
  if (read.status === 'rejected') return read.reason as Error;
  return null;
}

async function fetchRaw(proxy: ImageProxy, imageId: number, layer: Descriptor): Promise<Buffer> {
  const transfer = await proxy.getRawBlob(imageId, layer.digest);
  if (transfer.size !== -1 && transfer.size !== layer.size) {
    transfer.stream.destroy();
    await transfer.error.catch(() => null);
    throw new DigestMismatchError(`wasm layer ${layer.digest}: the proxy reports ${transfer.size} bytes, the manifest declares ${layer.size}`);
  }
  const proxyError = transfer.error.then((e) => {
    if (e !== null) throw new ProxyError(METHODS.GetRawBlob.name, e.message, e.code);
  });
  const [read, reported] = await Promise.allSettled([readVerified(transfer.stream, layer), proxyError]);
  const failure = firstFailure(read, reported);
  if (failure !== null) throw failure;
  return (read as PromiseFulfilledResult<Buffer>).value;
}

async function fetchVerified(proxy: ImageProxy, imageId: number, layer: Descriptor): Promise<Buffer> {
  const transfer = await proxy.getBlob(imageId, layer.digest, layer.size);
  // FinishPipe must run while the pipe is read, or a blob larger than the pipe buffer deadlocks.
  const [read, finished] = await Promise.allSettled([readVerified(transfer.stream, layer), transfer.finish()]);
  const failure = firstFailure(read, finished);
  if (failure !== null) throw failure;
  return (read as PromiseFulfilledResult<Buffer>).value;
}

/**
 * Opens `imageRef` on `proxy` (initialising it first if needed), finds the wasm layer in the
 * manifest, streams and verifies it (size and digest), and compiles it. The image is closed
 * before returning; the proxy stays open.
 */
export async function fetchWasmModule(proxy: ImageProxy, imageRef: string, options: FetchOptions = {}): Promise<FetchedWasm> {
  if (proxy.version === null) await proxy.initialize();
  const method = options.blobMethod ?? 'auto';
  const useRaw = method === 'raw' || (method === 'auto' && proxy.supports(METHODS.GetRawBlob));
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;

  const imageId = await proxy.openImage(imageRef);
  try {
    const { digest: manifestDigest, bytes: manifestBytes } = await proxy.getManifest(imageId);
    const manifest = parseManifest(manifestBytes);
    const layer = findWasmLayer(manifest.layers, imageRef);
    // An artifact's manifest is handed out as stored, so its bytes must hash to the digest.
    if (manifestDigest.startsWith('sha256:') && manifestDigest !== `sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`) {
      throw new DigestMismatchError(`manifest of ${imageRef} does not match its digest ${manifestDigest}`);
    }
    if (layer.size > maxBytes) throw new UnsupportedError(`wasm layer ${layer.digest} is ${layer.size} bytes, more than the ${maxBytes} allowed`);

    const bytes = useRaw ? await fetchRaw(proxy, imageId, layer) : await fetchVerified(proxy, imageId, layer);
    const module = await compileWasm(bytes, `wasm layer ${layer.digest}`);
    return { module, bytes, layer, manifestDigest, artifactType: manifest.artifactType, blobMethod: useRaw ? 'GetRawBlob' : 'GetBlob' };
  } finally {
    await proxy.closeImage(imageId).catch(() => {});
  }
}

// ---- command line ----

interface CliOptions {
  imageRef: string;
  exportName: string | null;
  args: WasmNumber[];
  proxyCommand: string;
  proxyArgs: string[];
  blobMethod: BlobMethod;
}

const USAGE = 'usage: fetch-wasm IMAGEREF [--export NAME] [--args 1,2] [--proxy CMD] [--proxy-arg ARG]... [--blob-method auto|raw|verified]';

export function parseCliArgs(argv: readonly string[]): CliOptions {
  const opts: CliOptions = { imageRef: '', exportName: null, args: [], proxyCommand: defaultProxyCommand(), proxyArgs: [], blobMethod: 'auto' };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new InvalidArgumentError(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--export': opts.exportName = value(); break;
      case '--args': opts.args = parseNumericArgs(value()); break;
      case '--proxy': opts.proxyCommand = value(); break;
      case '--proxy-arg': opts.proxyArgs.push(value()); break;
      case '--blob-method': {
        const m = value();
        if (m !== 'auto' && m !== 'raw' && m !== 'verified') throw new InvalidArgumentError(`--blob-method must be auto, raw or verified\n${USAGE}`);
        opts.blobMethod = m;
        break;
      }
      case '-h': case '--help': throw new InvalidArgumentError(USAGE);
      default:
        if (flag.startsWith('--')) throw new InvalidArgumentError(`unknown option ${flag}\n${USAGE}`);
        positional.push(arg);
    }
  }
  if (positional.length !== 1) throw new InvalidArgumentError(USAGE);
  opts.imageRef = positional[0]!;
  return opts;
}

async function main(argv: readonly string[]): Promise<number> {
  const opts = parseCliArgs(argv);
  const proxy = await ImageProxy.spawn({ command: opts.proxyCommand, args: opts.proxyArgs });
  try {
    const fetched = await fetchWasmModule(proxy, opts.imageRef, { blobMethod: opts.blobMethod });
    process.stderr.write(
      `${opts.imageRef}: ${fetched.artifactType} ${fetched.manifestDigest}\n` +
      `  layer ${fetched.layer.mediaType} ${fetched.layer.digest} (${fetched.bytes.length} bytes, via ${fetched.blobMethod}, protocol ${proxy.version})\n`,
    );
    if (opts.exportName === null) {
      const names = wasmExports(fetched.module).map((e) => `${e.name} (${e.kind})`);
      process.stdout.write(`exports: ${names.join(', ') || '(none)'}\n`);
    } else {
      const result = await callExport(fetched.module, opts.exportName, opts.args);
      process.stdout.write(`${opts.exportName}(${opts.args.map(String).join(', ')}) = ${String(result)}\n`);
    }
  } finally {
    await proxy.close();
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      const e = err as Error;
      const code = err instanceof LayerpipeError ? ` [${err.code}]` : '';
      process.stderr.write(`fetch-wasm: ${e.message}${code}\n`);
      process.exitCode = 1;
    },
  );
}
