/**
 * Command-line flags with skopeo's names: the one option system. Each flag either applies to
 * ProxyOptions or is refused with the reason (not built yet, or out of scope).
 */
import { LayerpipeError } from '../../protocol/errors';
import { parseCredsFlag } from '../config/creds-flag';
import type { RegistryOptions, SharedResources, SystemContext } from '../image/types';
import type { Logger } from '../log';
import type { Policy } from '../policy/types';

/** A command line that makes no sense: exit status 2 and the usage hint. */
export class UsageError extends LayerpipeError {
  override readonly code = 'LP_ERR_USAGE';
  override name = 'UsageError';
}

export interface ProxyOptions {
  debug: boolean;
  sockfd: number;
  osChoice: string;
  architectureChoice: string;
  variantChoice: string;
  userAgentPrefix: string;
  tmpDir: string;
  insecurePolicy: boolean;
  /** --policy; undefined = the user's or the system's file. */
  policyPath: string | undefined;
  /** Run the transfer memory guard (server/transfer/memory-guard.ts). */
  memoryGuard: boolean;
  /** serve --stdio: protocol 1.0 on stdin/stdout. */
  stdio: boolean;
  /** serve --listen: "unix:PATH", or "unix:" for the default path (server/wires/service/address.ts). */
  listen: string | undefined;
  /** serve --listen ws://HOST:PORT or wss://HOST:PORT, each a WebSocket service (server/wires/websocket/). */
  webSocketListens: string[];
  /** wss://: PEM certificate chain and key files. */
  tlsCertPath: string | undefined;
  tlsKeyPath: string | undefined;
  /** ws: the bearer token's file; undefined = a new token written to a 0600 file. */
  tokenFile: string | undefined;
  /** ws: Origins whose pages may connect (none by default). */
  allowedOrigins: string[];
  /** ws: binding to a non-loopback address was asked for explicitly. */
  allowRemote: boolean;
  /** ws: how often each connection is pinged; a peer silent for a whole interval is dropped. */
  wsPingIntervalMs: number;
  /** serve --listen: how long transfers in flight may go on after SIGTERM/SIGINT. */
  gracePeriodMs: number;
  /** 1.0 `fifo` payloads: how long a FIFO waits for its reader before its transfer fails. */
  fifoOpenTimeoutMs: number;
  /** inspect's own flags (skopeo's names), and --signatures, layerpipe's addition. */
  inspect: InspectFlags;
  /** blob -o: the file to write; undefined = stdout. */
  outputPath: string | undefined;
  registry: {
    -readonly [K in keyof RegistryOptions]: RegistryOptions[K];
  };
  /** `copy`: its own flags (server/copy/). */
  copy: { all: boolean; preserveDigests: boolean; removeSignatures: boolean; quiet: boolean; digestFile: string | undefined };
}

export interface InspectFlags {
  /** --raw: the manifest (with --config, the config) exactly as stored. */
  raw: boolean;
  /** --config: the image's config instead of the summary. */
  config: boolean;
  /** --format/-f: a Go template for the summary; undefined = JSON. */
  format: string | undefined;
  /** --no-tags/-n: do not list the repository's tags (RepoTags). */
  noTags: boolean;
  /** --signatures: add Signatures and the policy's verdict (Policy), and honour the policy. */
  signatures: boolean;
}

/** A tuning knob from the environment: a non-negative integer, else the default. */
function envInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : fallback;
}

/**
 * Defaults, with the environment's tuning knobs read here and nowhere else:
 * LAYERPIPE_STALL_TIMEOUT_MS, LAYERPIPE_RETRY_ATTEMPTS, LAYERPIPE_RETRY_DELAY_MS (registry
 * requests), LAYERPIPE_PARALLEL_RANGES, LAYERPIPE_RANGE_CHUNK_MB, LAYERPIPE_PARALLEL_MIN_BLOB_MB,
 * LAYERPIPE_PARALLEL_BELOW_MBPS, LAYERPIPE_PARALLEL_SAMPLE_MS, LAYERPIPE_PARALLEL_REMOTE_MS (large blobs
 * as Range requests from a distant or slow link; 1 range = off), LAYERPIPE_MEMORY_GUARD=0 (no memory guard) and
 * LAYERPIPE_FIFO_OPEN_TIMEOUT_MS (how long a 1.0 FIFO payload waits for its reader) and
 * LAYERPIPE_WS_PING_INTERVAL_MS (the WebSocket service's idle ping).
 */
export function defaultOptions(env: NodeJS.ProcessEnv = process.env): ProxyOptions {
  return {
    debug: false,
    sockfd: 0,
    osChoice: '',
    architectureChoice: '',
    variantChoice: '',
    userAgentPrefix: '',
    // Big temporary files (a decompressed archive) go where containers tools put them.
    tmpDir: env.TMPDIR ?? '/var/tmp',
    insecurePolicy: false,
    policyPath: undefined,
    memoryGuard: env.LAYERPIPE_MEMORY_GUARD !== '0',
    stdio: false,
    listen: undefined,
    webSocketListens: [],
    tlsCertPath: undefined,
    tlsKeyPath: undefined,
    tokenFile: undefined,
    allowedOrigins: [],
    allowRemote: false,
    wsPingIntervalMs: Math.max(10, envInteger(env, 'LAYERPIPE_WS_PING_INTERVAL_MS', 30_000)),
    gracePeriodMs: 10_000,
    fifoOpenTimeoutMs: Math.max(1, envInteger(env, 'LAYERPIPE_FIFO_OPEN_TIMEOUT_MS', 60_000)),
    inspect: { raw: false, config: false, format: undefined, noTags: false, signatures: false },
    outputPath: undefined,
    registry: {
      tlsVerify: undefined,
      certDir: undefined,
      authFile: undefined,
      credentials: undefined,
      registryToken: undefined,
      noCreds: false,
      registriesConf: undefined,
      registriesDir: undefined,
      commandTimeoutMs: undefined,
      stallTimeoutMs: Math.max(1, envInteger(env, 'LAYERPIPE_STALL_TIMEOUT_MS', 30_000)),
      retryAttempts: Math.max(1, envInteger(env, 'LAYERPIPE_RETRY_ATTEMPTS', 5)),
      retryDelayMs: envInteger(env, 'LAYERPIPE_RETRY_DELAY_MS', 500),
      parallelRanges: {
        connections: Math.max(1, envInteger(env, 'LAYERPIPE_PARALLEL_RANGES', 4)),
        chunkBytes: Math.max(1, envInteger(env, 'LAYERPIPE_RANGE_CHUNK_MB', 8)) * 1024 * 1024,
        minBlobBytes: envInteger(env, 'LAYERPIPE_PARALLEL_MIN_BLOB_MB', 32) * 1024 * 1024,
        sampleMs: envInteger(env, 'LAYERPIPE_PARALLEL_SAMPLE_MS', 100),
        splitBelowBytesPerSecond: envInteger(env, 'LAYERPIPE_PARALLEL_BELOW_MBPS', 100) * 1e6,
        remoteAfterMs: envInteger(env, 'LAYERPIPE_PARALLEL_REMOTE_MS', 10),
        maxHeldBytes: Math.max(1, envInteger(env, 'LAYERPIPE_RANGES_HELD_MB', 64)) * 1024 * 1024,
      },
    },
    copy: { all: false, preserveDigests: false, removeSignatures: false, quiet: false, digestFile: undefined },
  };
}

type FlagKind = 'bool' | 'string' | 'int';

export interface FlagSpec {
  readonly name: string;
  /** The one-letter form (-f), where skopeo has one. */
  readonly short?: string;
  readonly kind: FlagKind;
  readonly help: string;
  /** Applies the value; absent when the flag is refused. */
  readonly apply?: (opts: ProxyOptions, value: string) => void;
  /** Why the flag is refused. */
  readonly refused?: string;
}

/** Credential flags seen per parse, to refuse combinations skopeo refuses. */
const credentialFlagsSeen = new WeakMap<ProxyOptions, Set<string>>();

const CONFLICTING_CREDENTIAL_FLAGS: Readonly<Record<string, readonly string[]>> = {
  creds: ['username', 'password', 'no-creds'],
  username: ['creds', 'no-creds'],
  password: ['creds', 'no-creds'],
  'no-creds': ['creds', 'username', 'password'],
};

function seeCredentialFlag(o: ProxyOptions, name: string): void {
  const seen = credentialFlagsSeen.get(o) ?? new Set<string>();
  credentialFlagsSeen.set(o, seen);
  const clash = CONFLICTING_CREDENTIAL_FLAGS[name]?.find((other) => seen.has(other));
  if (clash !== undefined) throw new UsageError(`--${name} and --${clash} cannot be used together`);
  seen.add(name);
}

/** --username and --password come as a pair. */
function checkCredentialFlags(o: ProxyOptions): void {
  const seen = credentialFlagsSeen.get(o);
  if (seen === undefined) return;
  if (seen.has('username') && !seen.has('password')) throw new UsageError('--password must be given with --username');
  if (seen.has('password') && !seen.has('username')) throw new UsageError('--username must be given with --password');
}

function parseCreds(value: string): { username: string; password: string } {
  try {
    return parseCredsFlag(value);
  } catch (err) {
    throw new UsageError(`invalid value for --creds: ${(err as Error).message}`);
  }
}

const GO_DURATION_UNITS_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go time.Duration string ("1m30s", "500ms", "2h", "0") in milliseconds, rounded up. */
export function parseGoDuration(name: string, value: string): number {
  if (value === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(value); m !== null; m = re.exec(value)) {
    total += Number(m[1]) * GO_DURATION_UNITS_MS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (value === '' || matched !== value.length) {
    throw new UsageError(`invalid value ${JSON.stringify(value)} for --${name}: expected a duration such as 90s, 5m or 1h30m`);
  }
  return Math.ceil(total);
}

function parseBool(name: string, value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new UsageError(`invalid value ${JSON.stringify(value)} for --${name}: expected true or false`);
}

function parseNonNegativeInt(name: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`invalid value ${JSON.stringify(value)} for --${name}: expected a non-negative integer`);
  return Number(value);
}

/** Flags every command takes (skopeo's global flags). */
const GLOBAL_FLAGS: readonly FlagSpec[] = [
  { name: 'debug', kind: 'bool', help: 'log each request and reply to stderr', apply: (o, v) => { o.debug = parseBool('debug', v); } },
  { name: 'insecure-policy', kind: 'bool', help: 'accept every image, reading no signature policy', apply: (o, v) => { o.insecurePolicy = parseBool('insecure-policy', v); } },
  { name: 'policy', kind: 'string', help: 'signature policy file (containers-policy.json(5))', apply: (o, v) => { o.policyPath = v; } },
  { name: 'registries.d', kind: 'string', help: 'directory of containers-registries.d(5) files (where signatures are)', apply: (o, v) => { o.registry.registriesDir = v; } },
  { name: 'registries-conf', kind: 'string', help: 'registries.conf file (instead of the system and user ones)', apply: (o, v) => { o.registry.registriesConf = v; } },
  { name: 'override-os', kind: 'string', help: 'use OS instead of the running OS for choosing images', apply: (o, v) => { o.osChoice = v; } },
  { name: 'override-arch', kind: 'string', help: 'use ARCH instead of the architecture of the machine', apply: (o, v) => { o.architectureChoice = v; } },
  { name: 'override-variant', kind: 'string', help: 'use VARIANT instead of the running architecture variant', apply: (o, v) => { o.variantChoice = v; } },
  { name: 'command-timeout', kind: 'string', help: 'bound on each registry operation (Go duration, e.g. 90s); 0 = none', apply: (o, v) => { const ms = parseGoDuration('command-timeout', v); o.registry.commandTimeoutMs = ms === 0 ? undefined : ms; } },
  { name: 'tmpdir', kind: 'string', help: 'directory for temporary files', apply: (o, v) => { o.tmpDir = v; } },
  { name: 'user-agent-prefix', kind: 'string', help: 'prefix for the User-Agent of registry requests', apply: (o, v) => { o.userAgentPrefix = v; } },
];

/** Flags about where images come from (skopeo's image flags). */
const IMAGE_FLAGS: readonly FlagSpec[] = [
  { name: 'authfile', kind: 'string', help: 'path of the authentication file (may be /proc/self/fd/N)', apply: (o, v) => { o.registry.authFile = v; } },
  { name: 'creds', kind: 'string', help: 'USER[:PASSWORD] for the registry', apply: (o, v) => { seeCredentialFlag(o, 'creds'); o.registry.credentials = parseCreds(v); } },
  { name: 'username', kind: 'string', help: 'registry user name', apply: (o, v) => { seeCredentialFlag(o, 'username'); o.registry.credentials = { username: v, password: o.registry.credentials?.password ?? '' }; } },
  { name: 'password', kind: 'string', help: 'registry password', apply: (o, v) => { seeCredentialFlag(o, 'password'); o.registry.credentials = { username: o.registry.credentials?.username ?? '', password: v }; } },
  { name: 'registry-token', kind: 'string', help: 'bearer token for the registry', apply: (o, v) => { o.registry.registryToken = v; } },
  { name: 'no-creds', kind: 'bool', help: 'access the registry anonymously', apply: (o, v) => { const on = parseBool('no-creds', v); if (on) seeCredentialFlag(o, 'no-creds'); o.registry.noCreds = on; } },
  { name: 'cert-dir', kind: 'string', help: 'directory of certificates (*.crt, NAME.cert/NAME.key) for the registry', apply: (o, v) => { o.registry.certDir = v; } },
  { name: 'tls-verify', kind: 'bool', help: 'require HTTPS and verify certificates (false: plain HTTP and unverified TLS allowed)', apply: (o, v) => { o.registry.tlsVerify = parseBool('tls-verify', v); } },
  { name: 'shared-blob-dir', kind: 'string', help: 'blob directory shared with oci: layouts', refused: 'is not supported: layerpipe reads oci: blobs from the layout itself' },
  { name: 'daemon-host', kind: 'string', help: 'docker daemon address', refused: 'is not supported: the docker-daemon: transport is out of scope' },
  { name: 'decryption-key', kind: 'string', help: 'key to decrypt images', refused: 'is not supported: encrypted images are out of scope' },
];

/** Flags of every command that serves clients. */
const SERVING_FLAGS: readonly FlagSpec[] = [
  { name: 'memory-guard', kind: 'bool', help: 'run a cheap young-generation GC every 2 MiB streamed, to keep RSS flat (default true)', apply: (o, v) => { o.memoryGuard = parseBool('memory-guard', v); } },
];

const PROXY_FLAGS: readonly FlagSpec[] = [
  { name: 'sockfd', kind: 'int', help: 'serve on this fd (one end of a SOCK_SEQPACKET socketpair); default 0', apply: (o, v) => { o.sockfd = parseNonNegativeInt('sockfd', v); } },
];

/** --listen: WebSocket addresses add up; there is at most one unix socket. */
function applyListen(o: ProxyOptions, value: string): void {
  if (value.startsWith('ws://') || value.startsWith('wss://')) {
    o.webSocketListens.push(value);
    return;
  }
  if (o.listen !== undefined) throw new UsageError('serve listens on at most one unix socket (--listen unix:...); WebSocket addresses may be repeated');
  o.listen = value;
}

/** How `serve` reaches its clients (exactly one is required). Built, as the tables below, when its command runs. */
const serveFlags = (): readonly FlagSpec[] => [
  { name: 'stdio', kind: 'bool', help: 'serve protocol 1.0 on stdin/stdout (Content-Length framing); logs go to stderr', apply: (o, v) => { o.stdio = parseBool('stdio', v); } },
  { name: 'listen', kind: 'string', help: 'serve every client of a SOCK_SEQPACKET unix socket (unix:PATH, or unix: for $XDG_RUNTIME_DIR/layerpipe/layerpipe.sock) or of a WebSocket (ws://HOST:PORT, wss://HOST:PORT); may be repeated', apply: applyListen },
  { name: 'tls-cert', kind: 'string', help: 'wss://: PEM certificate chain file', apply: (o, v) => { o.tlsCertPath = v; } },
  { name: 'tls-key', kind: 'string', help: 'wss://: PEM private key file', apply: (o, v) => { o.tlsKeyPath = v; } },
  { name: 'token-file', kind: 'string', help: 'ws: file whose first line is the bearer token clients must present (default: a new token in a 0600 file, path printed)', apply: (o, v) => { o.tokenFile = v; } },
  { name: 'allow-origin', kind: 'string', help: 'ws: an Origin (scheme://host[:port]) whose pages may connect; may be repeated; none by default', apply: (o, v) => { o.allowedOrigins.push(...v.split(',').map((x) => x.trim()).filter((x) => x !== '')); } },
  { name: 'allow-remote', kind: 'bool', help: 'ws: allow binding to a non-loopback address', apply: (o, v) => { o.allowRemote = parseBool('allow-remote', v); } },
  { name: 'grace-period', kind: 'string', help: 'after SIGTERM/SIGINT, how long --listen lets transfers finish (Go duration); default 10s', apply: (o, v) => { o.gracePeriodMs = parseGoDuration('grace-period', v); } },
];

/** `copy` reads one image: skopeo's --src-* spellings of the image flags mean the same. */
const sourceImageFlags = (): readonly FlagSpec[] => IMAGE_FLAGS.map((f) => ({ ...f, name: `src-${f.name}` }));

const copyFlags = (): readonly FlagSpec[] => [
  { name: 'all', short: 'a', kind: 'bool', help: 'copy every instance of a list, and the list', apply: (o, v) => { o.copy.all = parseBool('all', v); } },
  { name: 'preserve-digests', kind: 'bool', help: 'fail rather than convert a manifest (which would change its digest)', apply: (o, v) => { o.copy.preserveDigests = parseBool('preserve-digests', v); } },
  { name: 'remove-signatures', kind: 'bool', help: 'do not copy signatures (required for a signed source: copy writes none)', apply: (o, v) => { o.copy.removeSignatures = parseBool('remove-signatures', v); } },
  { name: 'quiet', short: 'q', kind: 'bool', help: 'print no progress', apply: (o, v) => { o.copy.quiet = parseBool('quiet', v); } },
  { name: 'digestfile', kind: 'string', help: 'write the digest of the copied manifest to this file', apply: (o, v) => { o.copy.digestFile = v; } },
];

/** skopeo's --retry-times N: N more tries after the first. */
const retryFlag = (): FlagSpec => ({ name: 'retry-times', kind: 'int', help: 'how many times to retry a failed registry request', apply: (o, v) => { o.registry.retryAttempts = parseNonNegativeInt('retry-times', v) + 1; } });

const inspectFlags = (): readonly FlagSpec[] => [
  { name: 'raw', kind: 'bool', help: 'print the manifest (with --config, the config) exactly as stored', apply: (o, v) => { o.inspect.raw = parseBool('raw', v); } },
  { name: 'config', kind: 'bool', help: "print the image's config", apply: (o, v) => { o.inspect.config = parseBool('config', v); } },
  { name: 'format', short: 'f', kind: 'string', help: 'format the output with a Go template: {{.Field}}, {{.Field.Key}}, {{json .Field}}', apply: (o, v) => { o.inspect.format = v; } },
  { name: 'no-tags', short: 'n', kind: 'bool', help: "do not list the repository's tags (RepoTags)", apply: (o, v) => { o.inspect.noTags = parseBool('no-tags', v); } },
  { name: 'signatures', kind: 'bool', help: "layerpipe: add the image's signatures and the policy's verdict; a refused image exits 1", apply: (o, v) => { o.inspect.signatures = parseBool('signatures', v); } },
  retryFlag(),
];

const blobFlags = (): readonly FlagSpec[] => [
  { name: 'output', short: 'o', kind: 'string', help: 'write the blob to FILE (atomically: a temporary file renamed) instead of stdout', apply: (o, v) => { o.outputPath = v; } },
  retryFlag(),
];

export type CommandName = 'experimental-image-proxy' | 'serve' | 'inspect' | 'blob' | 'list-tags' | 'version' | 'copy';

export function flagsFor(command: CommandName): readonly FlagSpec[] {
  switch (command) {
    case 'experimental-image-proxy': return [...GLOBAL_FLAGS, ...IMAGE_FLAGS, ...SERVING_FLAGS, ...PROXY_FLAGS];
    case 'serve': return [...GLOBAL_FLAGS, ...IMAGE_FLAGS, ...SERVING_FLAGS, ...serveFlags()];
    case 'copy': return [...GLOBAL_FLAGS, ...IMAGE_FLAGS, ...sourceImageFlags(), ...copyFlags(), retryFlag()];
    case 'inspect': return [...GLOBAL_FLAGS, ...IMAGE_FLAGS, ...inspectFlags()];
    case 'blob': return [...GLOBAL_FLAGS, ...IMAGE_FLAGS, ...blobFlags()];
    case 'list-tags': return [...GLOBAL_FLAGS, ...IMAGE_FLAGS, retryFlag()];
    case 'version': return [];
  }
}

/** --help or -h was given: the command's usage goes to stdout, exit status 0. */
export class HelpRequest extends Error {
  constructor(readonly command: CommandName) {
    super(`help for ${command}`);
  }
}

/** The value of a flag given as --name=VALUE, -xVALUE, or as the next argument. */
function flagValue(spec: FlagSpec, shown: string, inline: string | undefined, argv: readonly string[], i: number): { value: string; used: number } {
  if (inline !== undefined) return { value: inline, used: 0 };
  if (spec.kind === 'bool') return { value: 'true', used: 0 };
  const next = argv[i + 1];
  if (next === undefined) throw new UsageError(`flag needs an argument: ${shown}`);
  return { value: next, used: 1 };
}

/**
 * Parses flags (--name VALUE, --name=VALUE, bare booleans, and -x VALUE, -x=VALUE, -xVALUE for
 * the flags with a short form); returns options and positionals. --help/-h throws HelpRequest.
 */
export function parseFlags(command: CommandName, argv: readonly string[]): { options: ProxyOptions; positionals: string[] } {
  const specs = flagsFor(command);
  const byName = new Map(specs.map((f) => [f.name, f]));
  const byShort = new Map(specs.filter((f) => f.short !== undefined).map((f) => [f.short!, f]));
  const options = defaultOptions();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') throw new HelpRequest(command);
    let spec: FlagSpec | undefined;
    let shown: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      shown = `--${name}`;
      spec = byName.get(name);
      if (spec === undefined) throw new UsageError(`unknown flag: --${name}`);
    } else if (arg.startsWith('-') && arg !== '-') {
      spec = byShort.get(arg[1]!);
      shown = `-${arg[1]!}`;
      if (spec === undefined) throw new UsageError(`unknown shorthand flag: ${JSON.stringify(arg[1])} in ${arg}`);
      const rest = arg.slice(2);
      if (rest !== '') inline = rest.startsWith('=') ? rest.slice(1) : rest;
      if (inline !== undefined && spec.kind === 'bool' && !rest.startsWith('=')) throw new UsageError(`unknown shorthand flag: ${JSON.stringify(rest[0])} in ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    const { value, used } = flagValue(spec, shown, inline, argv, i);
    i += used;
    if (spec.apply === undefined) throw new UsageError(`--${spec.name} ${spec.refused ?? 'is not supported'}`);
    spec.apply(options, value);
  }
  checkCredentialFlags(options);
  return { options, positionals };
}

/** The SystemContext of a command: its settings, its logger, and the resources it owns. */
export function systemContextFrom(options: ProxyOptions, log: Logger, resources: SharedResources, policy: Policy): SystemContext {
  return {
    log,
    resources,
    policy,
    osChoice: options.osChoice,
    architectureChoice: options.architectureChoice,
    variantChoice: options.variantChoice,
    userAgentPrefix: options.userAgentPrefix,
    tmpDir: options.tmpDir,
    registry: { ...options.registry },
  };
}
