/**
 * Runs docker-credential-NAME programs (the docker-credential-helpers protocol): `NAME get`
 * with the server URL on stdin answers {"ServerURL","Username","Secret"} on stdout.
 */
import { CancelledError, CredentialHelperError } from '../../protocol/errors';

export interface HelperAnswer {
  readonly username: string;
  readonly secret: string;
}

/** How long a helper may take before it is killed; keychain prompts can be slow. */
const HELPER_TIMEOUT_MS = 60_000;
/** Helpers print a few hundred bytes; anything bigger is not an answer. */
const MAX_OUTPUT_BYTES = 1 << 20;
/** Helpers print this (docker-credential-helpers' wording is "credentials not found in native keychain"). */
const NOT_FOUND_PATTERN = /credentials not found/i;

/** A helper name is the suffix after "docker-credential-"; a path there would run an arbitrary program. */
function checkHelperName(helper: string): void {
  if (helper === '' || helper.includes('/') || helper.includes('\0')) {
    throw new CredentialHelperError(`invalid credential helper name ${JSON.stringify(helper)}`);
  }
}

/** The first line of a helper's complaint, short, for an error message (never its stdout on success). */
function complaint(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/**
 * Asks `docker-credential-<helper> get` for serverUrl's credentials, finding the program on
 * env.PATH. undefined when the helper says it has none; throws CredentialHelperError when
 * the program is missing, fails otherwise, or answers something that is not the expected JSON,
 * and CancelledError (the helper killed) when `signal` aborts first.
 */
export async function getFromCredentialHelper(
  helper: string,
  serverUrl: string,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<HelperAnswer | undefined> {
  checkHelperName(helper);
  if (signal?.aborted) throw new CancelledError(`credential helper docker-credential-${helper}: cancelled`);
  const program = `docker-credential-${helper}`;
  const { code, stdout, stderr, spawnError, timedOut, overflow } = await new Promise<{
    code: number | null;
    stdout: Buffer;
    stderr: Buffer;
    spawnError: NodeJS.ErrnoException | undefined;
    timedOut: boolean;
    overflow: boolean;
  }>((resolve) => {
    // With a signal, Node kills the helper when it aborts (and reports an AbortError, handled below).
    // child_process is loaded here, not at start-up: most runs never call a helper.
    const { spawn } = require('node:child_process') as typeof import('node:child_process');
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'], ...(signal !== undefined ? { signal } : {}) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let spawnError: NodeJS.ErrnoException | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, HELPER_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes <= MAX_OUTPUT_BYTES) out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (err.length < 16) err.push(chunk);
    });
    // A helper may exit without reading stdin; that EPIPE is not the interesting failure.
    child.stdin.on('error', () => undefined);
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError = e;
    });
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      resolve({ code: exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err), spawnError, timedOut, overflow: outBytes > MAX_OUTPUT_BYTES });
    });
    child.stdin.end(serverUrl);
  });

  if (signal?.aborted) throw new CancelledError(`credential helper ${program}: cancelled`);
  if (spawnError !== undefined) {
    const why = spawnError.code === 'ENOENT' ? 'not found in $PATH' : `could not be started (${spawnError.code ?? spawnError.message})`;
    throw new CredentialHelperError(`credential helper ${program} ${why}`);
  }
  if (timedOut) throw new CredentialHelperError(`credential helper ${program} did not answer within ${HELPER_TIMEOUT_MS / 1000}s`);
  if (code !== 0) {
    const said = stdout.toString('utf8').trim() || stderr.toString('utf8').trim();
    if (NOT_FOUND_PATTERN.test(said)) return undefined;
    throw new CredentialHelperError(
      `credential helper ${program} failed for ${serverUrl} (exit status ${code === null ? 'killed' : code})${said === '' ? '' : `: ${complaint(said)}`}`,
    );
  }
  if (overflow) throw new CredentialHelperError(`credential helper ${program} answered more than ${MAX_OUTPUT_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.toString('utf8'));
  } catch {
    // The output may hold the secret in a form we cannot parse: do not quote it.
    throw new CredentialHelperError(`credential helper ${program} answered something that is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new CredentialHelperError(`credential helper ${program} answered something that is not a JSON object`);
  }
  const { Username: username, Secret: secret } = parsed as { Username?: unknown; Secret?: unknown };
  if ((username !== undefined && typeof username !== 'string') || (secret !== undefined && typeof secret !== 'string')) {
    throw new CredentialHelperError(`credential helper ${program} answered a Username or Secret that is not a string`);
  }
  if ((username ?? '') === '' && (secret ?? '') === '') return undefined;
  return { username: username ?? '', secret: secret ?? '' };
}
