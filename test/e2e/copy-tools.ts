/**
 * Helpers of the `layerpipe copy` tests (not a test file): run the command as a process, read
 * what it wrote back with skopeo (the oracle) and with the proxy itself.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { ImageProxy } from '../../clients/typescript';

const execFileAsync = promisify(execFile);

export const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'layerpipe');

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `layerpipe copy ARGS` (with --insecure-policy unless the caller gives a policy), never throwing. */
export async function layerpipeCopy(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  const withPolicy = args.some((a) => a.startsWith('--policy') || a.startsWith('--insecure-policy')) ? args : ['--insecure-policy', ...args];
  try {
    const { stdout, stderr } = await execFileAsync(BIN, ['copy', ...withPolicy], { env, maxBuffer: 64 * 1024 * 1024 });
    return { status: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { status: typeof e.code === 'number' ? e.code : null, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Starts `layerpipe copy` without waiting for it (to kill it mid-transfer). */
export function spawnLayerpipeCopy(args: readonly string[]): ChildProcess {
  return spawn(BIN, ['copy', '--insecure-policy', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function runSkopeo(args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync('skopeo', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export const sha256Hex = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** The digest of the manifest `skopeo inspect --raw` reads at `name`. */
export async function skopeoRawDigest(name: string): Promise<string> {
  return sha256Hex(Buffer.from(await runSkopeo(['inspect', '--raw', name]), 'utf8'));
}

/** skopeo copies the image out of `name` again (into `to`), reading and verifying every blob. */
export async function skopeoCopiesOut(name: string, to: string, all = false): Promise<void> {
  await runSkopeo(['--insecure-policy', 'copy', '--quiet', ...(all ? ['--all'] : []), name, to]);
}

/** What the proxy serves for `name`: GetManifest's digest, and every layer read through GetBlob (which verifies). */
export async function proxyReadBack(name: string): Promise<{ digest: string; layers: string[] }> {
  const proxy = await ImageProxy.spawn({ args: ['--insecure-policy'] });
  try {
    await proxy.initialize();
    const id = await proxy.openImage(name);
    const { digest } = await proxy.getManifest(id);
    const layers = await proxy.getLayerInfo(id);
    for (const layer of layers) {
      const blob = await proxy.getBlob(id, layer.digest, layer.size);
      const hash = createHash('sha256');
      const drain = async (): Promise<void> => {
        for await (const chunk of blob.stream as AsyncIterable<Buffer>) hash.update(chunk);
      };
      // The pipe ends as FinishPipe completes: both at once.
      await Promise.all([drain(), blob.finish()]);
      if (`sha256:${hash.digest('hex')}` !== layer.digest) throw new Error(`proxy served ${layer.digest} with other bytes`);
    }
    return { digest, layers: layers.map((l) => l.digest) };
  } finally {
    await proxy.shutdown();
  }
}
