/**
 * The image model's interfaces, and only interfaces.
 *
 * The transport contract, as in containers/image: a Transport parses the part of an image
 * reference after "NAME:" into an ImageReference; a reference opens an ImageSource; the source
 * hands out raw manifests and blob streams. Everything above (choosing a platform, converting
 * Docker manifests to OCI, re-serialising configs, verifying digests) is done once, in
 * server/image, for every transport.
 */
import type { Readable } from 'node:stream';
import type { Logger } from '../log';
import type { Policy } from '../policy/types';
import type { DockerReference } from '../reference/docker-reference';
import type { ByteRange } from './range';
import type { ImageSignature } from './signatures';

/** Settings for one proxy run that transports may need. Built once from the command line. */
export interface SystemContext {
  /** Platform wanted when a reference names a list; empty strings mean "this machine's". */
  readonly osChoice: string;
  readonly architectureChoice: string;
  readonly variantChoice: string;
  /** Prefix for the User-Agent of registry requests. */
  readonly userAgentPrefix: string;
  /** Directory for temporary files. */
  readonly tmpDir: string;
  /** Registry transport settings; filled in by the docker transport's flags. */
  readonly registry: RegistryOptions;
  /** The signature policy every image is checked against when it is opened (loaded at start-up). */
  readonly policy: Policy;
  /** Diagnostics (--debug). Never handed a credential or a token. */
  readonly log: Logger;
  /**
   * State that outlives one image (registry clients, connection pools, token caches), owned by
   * whoever built this context: one session, or a service that shares it between its sessions
   * on purpose. Closing the owner closes what is in it.
   */
  readonly resources: SharedResources;
}

/** Something a SharedResources holds and closes. */
export interface ClosableResource {
  close(): Promise<void>;
}

/** Keyed, lazily created resources with one owner who closes them all. */
export interface SharedResources {
  /** The resource under `key`, made by `create` the first time it is asked for. */
  get<T extends ClosableResource>(key: string, create: () => T): T;
}

/** Command-line settings that only the docker:// transport reads. */
export interface RegistryOptions {
  /** --tls-verify=false: plain HTTP and unverified TLS allowed. undefined = use registries.conf. */
  readonly tlsVerify: boolean | undefined;
  readonly certDir: string | undefined;
  readonly authFile: string | undefined;
  /** --creds USER[:PASS], or --username/--password. */
  readonly credentials: { readonly username: string; readonly password: string } | undefined;
  readonly registryToken: string | undefined;
  readonly noCreds: boolean;
  readonly registriesConf: string | undefined;
  /** --registries.d: the directory of containers-registries.d(5) files (signature lookaside). */
  readonly registriesDir: string | undefined;
  /** Overall timeout of one command (registry request), ms; undefined = none. */
  readonly commandTimeoutMs: number | undefined;
  /** No byte (or no response) for this long and a connection is considered stalled, ms. */
  readonly stallTimeoutMs: number;
  /** Tries per registry request (1 = no retry). */
  readonly retryAttempts: number;
  /** First retry delay, ms; doubles with each further try. */
  readonly retryDelayMs: number;
  /** Large blobs fetched as several concurrent Range requests (docker/blob-parallel.ts). */
  readonly parallelRanges: ParallelRangeOptions;
}

/** How a large blob is split over concurrent Range requests. */
export interface ParallelRangeOptions {
  /** Range requests in flight per blob; 1 = one stream, as before. */
  readonly connections: number;
  /** Bytes per range request; also what one range ahead of the reader may hold in memory. */
  readonly chunkBytes: number;
  /** Blobs smaller than this are fetched as one stream. */
  readonly minBlobBytes: number;
  /**
   * A blob starts as one stream; after it has flowed this long (ms), the rest goes parallel only
   * if that stream is slower than `splitBelowBytesPerSecond` (a per-connection cap, not a fast
   * link). 0: split at once, without measuring.
   */
  readonly sampleMs: number;
  readonly splitBelowBytesPerSecond: number;
  /**
   * A registry whose fastest answer so far (ms, the blob GET's included) took at least this long
   * is distant, and one connection to it rarely fills the link: split at once, without sampling.
   */
  readonly remoteAfterMs: number;
  /** All blobs of one registry pool (a process, a service) hold at most this many bytes ahead of their readers. */
  readonly maxHeldBytes: number;
}

/** An OCI content descriptor (the parts layerpipe reads). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

/** A manifest as the source stores it. */
export interface RawManifest {
  /** The exact bytes; their digest identifies the manifest. */
  readonly bytes: Buffer;
  /** The media type the source declares, or '' to have it guessed from the bytes. */
  readonly mediaType: string;
}

/** An open blob: a stream of its bytes (of the range, when one was asked for) and how many there are (-1 if unknown). */
export interface BlobReader {
  readonly stream: Readable;
  readonly size: number;
}

export interface BlobRequest {
  readonly digest: string;
  /** Size the caller expects, or -1. */
  readonly size: number;
  /** Aborts opening and reading the blob (its image was closed, its session ended). */
  readonly signal: AbortSignal;
  /**
   * Only these bytes (GetRawBlob's offset and length). The reader's size is then the number of
   * bytes the range covers; an offset past the blob's end is an InvalidArgumentError.
   */
  readonly range?: ByteRange | undefined;
}

/** The data half of a transport: where manifests and blobs come from. */
export interface ImageSource {
  readonly reference: ImageReference;
  /**
   * The manifest the reference names, or with instanceDigest one instance of the list it names.
   * Throws ImageNotFoundError when the image (tag, ref) does not exist.
   */
  getManifest(instanceDigest: string | undefined, signal: AbortSignal): Promise<RawManifest>;
  /** Opens a blob. The stream is not verified here; the caller checks size and digest. */
  getBlob(request: BlobRequest): Promise<BlobReader>;
  /**
   * The signatures stored with the image (simple-signing blobs as containers-signature(5)
   * describes them, sigstore payloads), for the top-level manifest or one instance. Absent
   * when the transport cannot store any; an empty list when it could but has none.
   */
  getSignatures?(instanceDigest: string | undefined, signal: AbortSignal): Promise<ImageSignature[]>;
  /** Releases files, sockets and temporary state. Idempotent. */
  close(): Promise<void>;
}

/** A parsed reference of one transport. */
export interface ImageReference {
  readonly transport: Transport;
  /** The reference in TRANSPORT:REFERENCE form, for messages and logs. */
  toString(): string;
  /**
   * The docker reference the image is known by, when it has one (docker:, a docker-archive:
   * tag): what signedIdentity requirements compare signatures with.
   */
  readonly dockerReference: DockerReference | undefined;
  /**
   * The most specific scope a containers-policy.json(5) transport section can name for this
   * reference, as containers tools compute it; '' when the transport has none. Throws
   * InvalidArgumentError when it cannot be computed (a local path that cannot be resolved).
   */
  policyIdentity(): string;
  /**
   * The scopes to try after policyIdentity(), most specific first, as containers/image lists
   * them (oci: and oci-archive: repeat the identity first); never the transport default "".
   */
  policyNamespaces(): string[];
  /**
   * Opens the source. Throws ImageNotFoundError when the reference names nothing that exists.
   * `signal` aborts whatever opening does (network requests, indexing an archive).
   */
  newImageSource(ctx: SystemContext, signal: AbortSignal): Promise<ImageSource>;
}

/** A transport: registered by name, parses references. */
export interface Transport {
  /** "oci", "dir", "docker", "oci-archive", "docker-archive". */
  readonly name: string;
  /** Parses what follows "NAME:". Throws InvalidArgumentError on a malformed reference. */
  parseReference(reference: string): ImageReference;
  /**
   * The tags of the collection of images `reference` (what follows "NAME:") names: a
   * registry's repository, a layout's ref names. Absent for transports that have no such thing.
   */
  listTags?(reference: string, ctx: SystemContext, signal: AbortSignal): Promise<string[]>;
}
