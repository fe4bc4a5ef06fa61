/**
 * Finding and loading the policy at start-up, as skopeo does: --policy FILE, else the user's
 * $HOME/.config/containers/policy.json when it exists, else /etc/containers/policy.json;
 * --insecure-policy reads no file and accepts everything. A file that cannot be read or
 * parsed stops the command before anything is served.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidConfigError, systemErrorText } from '../../protocol/errors';
import type { Policy } from './types';
import { homeDirectory } from '../config/home';

export const SYSTEM_POLICY_PATH = '/etc/containers/policy.json';

/** The policy --insecure-policy stands for. */
export const ACCEPT_ANYTHING: Policy = { default: [{ type: 'insecureAcceptAnything' }], transports: new Map() };

export interface PolicyLocation {
  /** --policy. */
  readonly path: string | undefined;
  readonly insecure: boolean;
  /** The home directory the user file is looked for in; the process's by default. */
  readonly home?: string;
}

/** The file a policy is read from when --policy is not given. */
export function defaultPolicyPath(home: string = homeDirectory()): string {
  const user = path.join(home, '.config', 'containers', 'policy.json');
  return existsSync(user) ? user : SYSTEM_POLICY_PATH;
}

/**
 * The policy `where` names. The parser, and the reference grammar it checks scopes with, are
 * imported only when a file is read: an --insecure-policy proxy answers Initialize without
 * running them (the bundle keeps them in the start's pack, so a file costs no extra read).
 */
export async function loadPolicy(where: PolicyLocation): Promise<Policy> {
  if (where.insecure) return ACCEPT_ANYTHING;
  const file = where.path ?? defaultPolicyPath(where.home);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidConfigError(`Error loading trust policy: open ${file}: ${systemErrorText(err).replace(/^[A-Z]+: /, '')}`, { cause: err });
  }
  const { parsePolicy, PolicyFormatError } = await import('./parse');
  try {
    return parsePolicy(text);
  } catch (err) {
    if (err instanceof PolicyFormatError) throw new InvalidConfigError(`Error loading trust policy: invalid policy in ${JSON.stringify(file)}: ${err.message}`);
    throw err;
  }
}
