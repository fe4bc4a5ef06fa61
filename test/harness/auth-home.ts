/**
 * Homes for the credentials tests (server/config/auth.ts): a fresh home and runtime directory
 * per case, with a real docker-credential-test shell script on a private PATH that answers per
 * server URL and logs every URL it was asked about.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import type { AuthLookupOptions } from '../../server/config/auth';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-auth-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

export const b64 = (s: string): string => Buffer.from(s).toString('base64');
export const basic = (username: string, password: string) => ({ kind: 'basic', username, password });

/** The helper answers per server URL and logs every URL it was asked about. */
const HELPER_SCRIPT = `#!/bin/sh
[ "$1" = get ] || { echo "unsupported action $1" >&2; exit 3; }
url=$(cat)
printf '%s\\n' "$url" >> "$HELPER_LOG"
case "$url" in
  registry.example.com) printf '{"ServerURL":"%s","Username":"helperuser","Secret":"helpersecret"}' "$url" ;;
  token.example.com) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-abc"}' "$url" ;;
  broken.example.com) echo "keychain is locked" >&2; exit 1 ;;
  garbage.example.com) echo 'Secret=supersecret-garbage'; exit 0 ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hubuser","Secret":"hubsecret"}' "$url" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
export const binDir = path.join(root, 'bin');
fs.mkdirSync(binDir);
fs.writeFileSync(path.join(binDir, 'docker-credential-test'), HELPER_SCRIPT, { mode: 0o755 });

let caseNo = 0;
export interface Home {
  home: string;
  runtime: string;
  env: NodeJS.ProcessEnv;
  helperLog: string;
  write(rel: string, content: unknown): string;
  opts(extra?: Partial<AuthLookupOptions>): AuthLookupOptions;
  asked(): string[];
}
/** A fresh home and runtime dir; env holds only what the test sets. */
export function newHome(): Home {
  const dir = path.join(root, `case${++caseNo}`);
  const home = path.join(dir, 'home');
  const runtime = path.join(dir, 'run');
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(runtime, { recursive: true });
  const helperLog = path.join(dir, 'helper.log');
  fs.writeFileSync(helperLog, '');
  const env: NodeJS.ProcessEnv = { PATH: `${binDir}:/usr/bin:/bin`, HOME: home, XDG_RUNTIME_DIR: runtime, HELPER_LOG: helperLog };
  return {
    home,
    runtime,
    env,
    helperLog,
    write(rel, content) {
      const file = path.isAbsolute(rel) ? rel : path.join(home, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
      return file;
    },
    opts(extra = {}) {
      return { env, homeDir: home, ...extra };
    },
    asked() {
      return fs.readFileSync(helperLog, 'utf8').split('\n').filter((l) => l !== '');
    },
  };
}
