/**
 * The user's home directory, found as containers tools find it: $HOME when set and not empty,
 * else the passwd entry's (os.homedir(), which reads a set $HOME first too). node:os loads only
 * in that case: at a proxy's start it costs ~0.4 ms, and Initialize needs nothing of it.
 */
export function homeDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.HOME;
  return home !== undefined && home !== '' ? home : (require('node:os') as typeof import('node:os')).homedir();
}
