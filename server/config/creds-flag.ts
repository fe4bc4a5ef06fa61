/**
 * The value of `--creds USER[:PASS]`, as skopeo reads it. Apart from auth.ts so that parsing a
 * command line does not load the auth-file and credential-helper code with it.
 */
import { InvalidArgumentError } from '../../protocol/errors';

/** The password may contain colons; only the first one splits. */
export function parseCredsFlag(value: string): { username: string; password: string } {
  if (value === '') throw new InvalidArgumentError('credentials can not be empty');
  const colon = value.indexOf(':');
  if (colon === -1) return { username: value, password: '' };
  if (colon === 0) throw new InvalidArgumentError('username can not be empty in --creds');
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}
