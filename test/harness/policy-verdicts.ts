/**
 * What a signature policy says of an image, asked of both sides the e2e policy tests compare:
 * `skopeo --policy P copy IMAGE dir:…` (the oracle) and layerpipe's one open path in process.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PolicyDeniedError } from '../../protocol/errors';
import { openImageByName } from '../../server/image/open';
import { parsePolicy } from '../../server/policy/parse';
import { closeTestContext, neverAborted, testContext } from './context';

export interface Verdict {
  readonly accepted: boolean;
  /** skopeo: its whole stderr; layerpipe: the PolicyDeniedError's message. */
  readonly reason?: string;
}

export interface SkopeoVerdictOptions {
  /** A policy file, or a policy to write into a file under `scratchDir`. */
  readonly policy: string | unknown;
  readonly registriesD: string;
  readonly image: string;
  /** Where the policy file and skopeo's dir: copy go (the copy is removed). */
  readonly scratchDir: string;
  /** Extra flags for `skopeo copy` (e.g. --src-creds). */
  readonly copyFlags?: readonly string[];
}

/** Asynchronous, so that a lookaside or registry served by this process can answer skopeo. */
export async function skopeoVerdict(options: SkopeoVerdictOptions): Promise<Verdict> {
  const work = mkdtempSync(path.join(options.scratchDir, 'skopeo-'));
  let policyPath: string;
  if (typeof options.policy === 'string') {
    policyPath = options.policy;
  } else {
    policyPath = path.join(work, 'policy.json');
    writeFileSync(policyPath, JSON.stringify(options.policy));
  }
  try {
    const args = ['--policy', policyPath, '--registries.d', options.registriesD, 'copy', '-q', '--src-tls-verify=false', ...(options.copyFlags ?? []), options.image, `dir:${path.join(work, 'out')}`];
    const stderr = await new Promise<string | undefined>((resolve) => {
      execFile('skopeo', args, (err, _stdout, errText) => resolve(err === null ? undefined : String(errText)));
    });
    return stderr === undefined ? { accepted: true } : { accepted: false, reason: stderr.trim() };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Opens `image` in process with `policy`; refused images give the PolicyDeniedError's message. */
export async function layerpipeVerdict(policy: unknown, image: string, registry: { registriesDir: string; registriesConf?: string }): Promise<Verdict> {
  const ctx = testContext({ policy: parsePolicy(JSON.stringify(policy)), registry: { ...registry, tlsVerify: false } });
  try {
    const opened = await openImageByName(image, ctx, neverAborted());
    await opened.close();
    return { accepted: true };
  } catch (err) {
    if (err instanceof PolicyDeniedError) return { accepted: false, reason: err.message };
    throw err;
  } finally {
    await closeTestContext(ctx);
  }
}
