/**
 * Typed access to the layerpipe_native addon (protocol/seqpacket/seqpacket.c), at the package
 * root: build/Release/layerpipe_native.node when it was compiled here (scripts/install-native.js,
 * `npm run install`), else the Node-API prebuild for this platform shipped in prebuilds/
 * (scripts/prebuild.js), else what node-gyp-build finds.
 */
import * as path from 'node:path';
import { InternalError } from '../errors';

/** One packet as recvPacket returns it. */
export interface ReceivedPacket {
  data: Buffer;
  /** Descriptors from the packet's SCM_RIGHTS messages, close-on-exec; the receiver owns them. */
  fds: number[];
  /** The packet was longer than maxLen; the rest of it is lost. */
  truncated: boolean;
  /** The kernel dropped descriptors for lack of control-buffer room (more than 253). */
  controlTruncated: boolean;
  /** The peer closed and nothing is left to read. */
  eof: boolean;
}

/**
 * Called when the watched fd is ready; status is 0 or a negative libuv error code. libuv
 * reports POLLERR (a pending socket error) as UV_EBADF and stops the handle: start it again
 * after dealing with the error.
 */
export type PollerCallback = (status: number, readable: boolean, writable: boolean) => void;

/** A uv_poll_t watching one fd on Node's event loop. */
export interface Poller {
  /** Watches for the given readiness; a started Poller keeps the process alive. Both false = stop. */
  start(readable: boolean, writable: boolean): void;
  stop(): void;
  /** Releases the handle; idempotent. The fd itself stays open (close it afterwards). */
  close(): void;
  /** Like a timer's ref/unref: whether a started Poller keeps the process alive. */
  ref(): void;
  unref(): void;
}

export interface PollerConstructor {
  /** Throws (code 'EBADF', 'EEXIST' for a second Poller on the same fd, 'EPERM' for regular files...). */
  new (fd: number, callback: PollerCallback): Poller;
}

export type SocketType = 'seqpacket' | 'stream' | 'dgram' | 'other';

/** What fstat found at a path openBeneath opened. */
export type FileKind = 'file' | 'directory' | 'fifo' | 'character-device' | 'block-device' | 'socket' | 'symlink' | 'other';

/**
 * How openBeneath resolves the path: 'auto' uses openat2 and falls back to the walk when the
 * kernel lacks it (ENOSYS, or EPERM from a seccomp filter); the other two force one way.
 */
export type BeneathResolver = 'auto' | 'openat2' | 'walk';

export interface BeneathFile {
  /**
   * A close-on-exec, blocking, read-only descriptor the caller owns, when `kind` is 'file'.
   * For any other kind the addon has already closed it, and this is -1.
   */
  fd: number;
  kind: FileKind;
  /** st_size from fstat. */
  size: number;
  /** Which way the path was resolved. */
  resolver: 'openat2' | 'walk';
}

/**
 * A ring of anonymous memory per transfer between a blob's chunks and a pipe (pipe-feed.c):
 * bytes are copied into it, hashed there, and handed to the pipe with vmsplice, so
 * the pipe references the ring's pages instead of copying them. A ring byte is rewritten only
 * once the pipe's reader is past it, and close() unmaps the ring (pages still in the pipe live
 * on, owned by it). Never blocks on the pipe: 0 / false mean "full, wait until writable".
 */
export interface PipeFeed {
  /** Copies what fits of `chunk` into the ring, hashes it, queues whole pages; the bytes taken. */
  push(chunk: Uint8Array): number;
  /** Hands queued bytes to the pipe (a partial last page only when `final`); true once all are in it. */
  flush(final: boolean): boolean;
  /** Lowercase hex digest of every byte taken (only with an algorithm); once. */
  digest(): string;
  /** Unmaps the ring; idempotent. Other methods throw afterwards. */
  close(): void;
}

export interface PipeFeedConstructor {
  /** `pipeFd` is a non-blocking pipe write end; `algorithm` an OpenSSL digest name ('sha256'...) or null for no hashing. */
  new (pipeFd: number, algorithm: string | null): PipeFeed;
}

/**
 * A blob's bytes hashed, and written to its file, on libuv's thread pool (blob-hasher.c), so
 * that the thread receiving them does not hash them too. One update at a time: a second call
 * before the first settles throws ERR_BLOB_HASHER_BUSY. The chunks must stay unchanged until
 * the update settles.
 */
export interface BlobHasher {
  /** Hashes `chunks` in order and, unless `fd` is -1, writes them at its offset (short writes continued; the fd stays open). */
  update(chunks: readonly Uint8Array[], fd: number): Promise<void>;
  /** Lowercase hex digest of every byte given; once, with no update in flight. */
  digest(): string;
}

export interface BlobHasherConstructor {
  /** `algorithm` is an OpenSSL digest name ('sha256'...). */
  new (algorithm: string): BlobHasher;
}

/** How a FilePump ended well. */
export interface FilePumpResult {
  /** Bytes copied (spliced, or read, hashed and queued into the pipe). */
  bytes: number;
  /** The file ended before `length` bytes (or, for a length of -1, where it ended). */
  eof: boolean;
  /** Verified only: the span had a byte past `maxBytes` (not delivered). */
  overflow: boolean;
  /** Verified only: lowercase hex digest of the bytes copied. */
  digest: string | null;
}

/**
 * Copies a span of a regular file into a non-blocking pipe entirely in the addon (file-pump.c),
 * starting at once: raw with splice (no byte copied), or verified through a PipeFeed-like ring
 * (pread, hash, vmsplice). Waits for room on its own uv_poll_t, so nothing else may poll the
 * pipe fd meanwhile. The callback runs once, unless cancel() came first.
 */
export interface FilePump {
  /** Bytes copied so far (progress). */
  bytes(): number;
  /** Stops without calling back; idempotent. Both fds stay open (the caller closes them). */
  cancel(): void;
}

export interface FilePumpConstructor {
  /**
   * `length` and `maxBytes` of -1 mean to the file's end / no limit. With an `algorithm` the bytes
   * are hashed and at most `maxBytes` are copied; a system error (EPIPE...) is the callback's error.
   */
  new (
    fileFd: number, position: number, length: number, pipeFd: number, algorithm: string | null, maxBytes: number,
    callback: (err: NativeError | null, result?: FilePumpResult) => void,
  ): FilePump;
}

/** Functions throw an Error with `code` set to the errno name ('EBADF', 'EPIPE', ...). */
export interface NativeModule {
  /** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC). */
  seqpacketPair(): [number, number];
  /** pipe2(O_CLOEXEC): [read end, write end]. */
  pipe(): [number, number];
  setNonBlocking(fd: number, on: boolean): void;
  setCloexec(fd: number, on: boolean): void;
  /**
   * One sendmsg (MSG_NOSIGNAL | MSG_DONTWAIT) carrying `fds` in one SCM_RIGHTS message, in
   * order. False when the socket buffer is full (wait for writability and retry). The caller
   * still owns `fds` afterwards (the kernel passes duplicates).
   */
  sendPacket(fd: number, data: Uint8Array, fds: readonly number[]): boolean;
  /** One recvmsg (MSG_CMSG_CLOEXEC | MSG_DONTWAIT); null when nothing is queued. */
  recvPacket(fd: number, maxLen: number): ReceivedPacket | null;
  close(fd: number): void;
  /** getsockopt(SO_TYPE); throws ENOTSOCK for non-sockets. */
  socketType(fd: number): SocketType;
  /** getsockopt(SO_ERROR): the pending error's name (e.g. 'ECONNRESET') or null; reading clears it. */
  takeSocketError(fd: number): string | null;
  /** prctl(PR_SET_PDEATHSIG): this process gets `signal` when its parent thread exits. */
  setParentDeathSignal(signal: number): void;
  /** fcntl(F_SETPIPE_SZ): resizes a pipe's buffer; the size the kernel set. */
  setPipeSize(fd: number, size: number): number;
  /**
   * open(path, O_PATH | O_DIRECTORY | O_CLOEXEC) on the thread pool: a directory descriptor for
   * openBeneath (symlinks in `path` itself are followed). Close it with close().
   */
  openDirectory(path: string): Promise<number>;
  /**
   * Opens `relPath` below the directory `dirFd` on the thread pool, following no symlink at any
   * component (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS, or an
   * openat(O_NOFOLLOW) walk), with O_NONBLOCK so a FIFO or device cannot block, then fstat.
   * Rejects with code ELOOP for a symlink on the path, EXDEV for an absolute path or a ".."
   * component, ENOENT, ENOTDIR... Throws at once for a path with a NUL byte (TypeError) or of
   * PATH_MAX bytes or more (ENAMETOOLONG). `dirFd` must stay open until the promise settles.
   */
  openBeneath(dirFd: number, relPath: string, resolver: BeneathResolver): Promise<BeneathFile>;
  /** Whether this kernel has openat2 (probed once). */
  kernelHasOpenat2(): boolean;
  /** mkfifo(path) with exactly `mode` (chmod after, so the umask does not narrow it). */
  mkfifo(path: string, mode: number): void;
  /**
   * A listening SOCK_SEQPACKET unix socket bound to `path` (close-on-exec, non-blocking), its
   * file created with mode 0600 (the umask is narrowed around bind). EADDRINUSE when the path
   * exists; ENAMETOOLONG past 107 bytes.
   */
  listenSeqpacket(path: string, backlog: number): number;
  /** accept4 on a listening socket: a close-on-exec, non-blocking connection, or null when none waits. */
  acceptSeqpacket(listenFd: number): number | null;
  /**
   * A close-on-exec, non-blocking SOCK_SEQPACKET socket connected to `path`. Throws at once:
   * EAGAIN (the listener's backlog is full: retry), ECONNREFUSED (nobody listens), ENOENT.
   */
  connectSeqpacket(path: string): number;
  /** getsockopt(SO_ACCEPTCONN); throws ENOTSOCK for non-sockets. */
  isListeningSocket(fd: number): boolean;
  /** Writes the padded standard base64 of `src` into `dst` at `offset`; the offset after it. RangeError if it does not fit. */
  base64Encode(src: Uint8Array, dst: Uint8Array, offset: number): number;
  /**
   * Decodes the padded standard base64 text in src[start, end) into `dst` at `offset`: the
   * number of bytes written, or -(1 + i) when src[i] is the first byte that makes the text
   * invalid (not base64, misplaced or missing padding, non-zero bits under padding). RangeError
   * if the bounds are wrong or the bytes ((end - start) / 4 * 3, less one per final '=') do not fit.
   */
  base64Decode(src: Uint8Array, start: number, end: number, dst: Uint8Array, offset: number): number;
  /** shutdown(SHUT_RDWR): its reader sees the end and the peer a closed connection; the fd stays open (ENOTCONN ignored). */
  shutdownSocket(fd: number): void;
  /**
   * setsockopt(SO_SNDBUF, bytes), then the size the kernel uses: about twice the request, capped
   * by net.core.wmem_max (doubled). A SEQPACKET packet must fit it whole.
   */
  setSendBuffer(fd: number, bytes: number): number;
  /** Name of a (negative) libuv error code, e.g. -9 -> 'EBADF'. */
  errorName(code: number): string;
  /** stat(2)'s st_mtime in ms, as fs.Stats.mtimeMs; throws ENOENT... (bin/layerpipe, before its bundle runs). */
  mtimeMs(path: string): number;
  /** A regular file's bytes in a new Buffer; EINVAL for anything else (bin/layerpipe reads code caches so). */
  readFile(path: string): Buffer;
  Poller: PollerConstructor;
  PipeFeed: PipeFeedConstructor;
  FilePump: FilePumpConstructor;
  BlobHasher: BlobHasherConstructor;
}

/** An Error thrown by the addon for a failed system call. */
export interface NativeError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
}

/** The package root: this file is compiled to dist/protocol/seqpacket/native.js. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

/** node-gyp-build's loader: the addon found below a package root. */
type AddonLoader = (packageRoot: string) => unknown;

/** Where `npm run install` builds the addon, the place node-gyp-build looks first. */
const BUILT_ADDON = path.join(PACKAGE_ROOT, 'build', 'Release', 'layerpipe_native.node');

/** The prebuild shipped for this platform, named as node-gyp-build names it (only glibc ones are shipped). */
const PREBUILT_ADDON = path.join(PACKAGE_ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'node.napi.glibc.node');

/**
 * The addon built in place, else the prebuild for this platform, each required by its path:
 * node-gyp-build's search (the package.json read, directory listings, node:os) costs every start
 * about a millisecond to find the same file, and bin/layerpipe has already loaded it from one of
 * these two. Undefined when neither is there or the prebuild does not load (another libc), or when
 * the environment asks node-gyp-build to choose (PREBUILDS_ONLY, LAYERPIPE_PREBUILD).
 */
function loadKnownAddon(): NativeModule | undefined {
  if (process.env.PREBUILDS_ONLY || process.env.LAYERPIPE_PREBUILD) return undefined;
  try {
    return require(BUILT_ADDON) as NativeModule;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'MODULE_NOT_FOUND') throw err;
  }
  try {
    return require(PREBUILT_ADDON) as NativeModule;
  } catch {
    return undefined;
  }
}

function load(): NativeModule {
  try {
    return loadKnownAddon() ?? ((require('node-gyp-build') as AddonLoader)(PACKAGE_ROOT) as NativeModule);
  } catch (err) {
    throw new InternalError(`cannot load the layerpipe_native addon below ${PACKAGE_ROOT} (run \`npm run install\` there to build it): ${String(err)}`, {
      cause: err,
    });
  }
}

export const native: NativeModule = load();
