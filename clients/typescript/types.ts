/**
 * Shapes of what the client returns. The OCI config types name the members clients usually
 * read; anything else the proxy sends is kept under the index signature.
 */
import type { Readable } from 'node:stream';
import type { RawBlobError } from '../../protocol/methods';

/** The `config` member of an OCI image config (what GetConfig returns). */
export interface OciContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  [key: string]: unknown;
}

export interface OciHistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** A full OCI image config (what GetFullConfig returns). */
export interface OciImageConfig {
  created?: string;
  author?: string;
  architecture?: string;
  variant?: string;
  os?: string;
  'os.version'?: string;
  'os.features'?: string[];
  config?: OciContainerConfig;
  rootfs?: { type: string; diff_ids: string[] };
  history?: OciHistoryEntry[];
  [key: string]: unknown;
}

/** A successful reply as `call` returns it. The caller owns `fds` and must close them. */
export interface CallResult<V> {
  value: V;
  fds: number[];
  pipeid: number;
}

/** Whatever came back for `sendRaw`, unchecked. The caller owns `fds`. */
export interface RawReply {
  data: Buffer;
  /** The packet parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  fds: number[];
  truncated: boolean;
}

export interface ManifestResult {
  /** Digest of the manifest as stored (before any conversion to OCI). */
  digest: string;
  /** The manifest as OCI JSON. */
  bytes: Buffer;
}

/**
 * A GetBlob transfer. The stream ends only once the proxy closes its write end, which it
 * does in FinishPipe: call `finish()` right away and await it while reading the stream
 * (awaiting it first deadlocks on blobs larger than the pipe buffer). `finish()` rejects
 * when the copy failed: short read, digest mismatch, or "broken pipe" if the stream was
 * destroyed early. Data read is trustworthy only once `finish()` has resolved.
 */
export interface BlobTransfer {
  /** Size as the source reports it; -1 when unknown. */
  size: number;
  stream: Readable;
  /** Sends FinishPipe (once; later calls return the same promise). */
  finish: () => Promise<void>;
}

/**
 * A GetRawBlob transfer: no FinishPipe. `error` settles after the data stream's copy ends:
 * null on success, else the proxy's error. Nothing is verified: check the digest yourself.
 */
export interface RawBlobTransfer {
  size: number;
  stream: Readable;
  error: Promise<RawBlobError | null>;
}
