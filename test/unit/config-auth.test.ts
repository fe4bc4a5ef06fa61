/**
 * Credentials lookup (server/config/auth.ts) against real files in a temporary home, and a real
 * docker-credential-test shell script on a temporary PATH.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { authFileSearchPath, lookupCredentials, parseCredsFlag, ReadOnceFiles, type AuthLookupOptions } from '../../server/config/auth';
import { CancelledError, CredentialHelperError, InvalidArgumentError, InvalidConfigError } from '../../protocol/errors';
import { native } from '../../protocol/seqpacket/native';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-auth-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const basic = (username: string, password: string) => ({ kind: 'basic', username, password });

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
const binDir = path.join(root, 'bin');
fs.mkdirSync(binDir);
fs.writeFileSync(path.join(binDir, 'docker-credential-test'), HELPER_SCRIPT, { mode: 0o755 });

let caseNo = 0;
interface Home {
  home: string;
  runtime: string;
  env: NodeJS.ProcessEnv;
  helperLog: string;
  write(rel: string, content: unknown): string;
  opts(extra?: Partial<AuthLookupOptions>): AuthLookupOptions;
  asked(): string[];
}
/** A fresh home and runtime dir; env holds only what the test sets. */
function newHome(): Home {
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

describe('parseCredsFlag', () => {
  it('splits at the first colon only', () => {
    assert.deepEqual(parseCredsFlag('user:pa:ss'), { username: 'user', password: 'pa:ss' });
    assert.deepEqual(parseCredsFlag('user:'), { username: 'user', password: '' });
  });
  it('takes a lone user as an empty password', () => {
    assert.deepEqual(parseCredsFlag('user'), { username: 'user', password: '' });
  });
  it('rejects an empty username or value without echoing the password', () => {
    assert.throws(() => parseCredsFlag(':hunter2'), (e: unknown) => e instanceof InvalidArgumentError && !e.message.includes('hunter2'));
    assert.throws(() => parseCredsFlag(''), InvalidArgumentError);
  });
});

describe('auth file search order', () => {
  const key = { registry: 'reg.example.com', repository: 'ns/app' };
  const entry = (user: string) => ({ auths: { 'reg.example.com': { auth: b64(`${user}:pw-${user}`) } } });

  it('reads runtime, XDG config, Docker config, then ~/.dockercfg', async () => {
    const h = newHome();
    const files = [
      h.write(path.join(h.runtime, 'containers/auth.json'), entry('runtime')),
      h.write('.config/containers/auth.json', entry('xdg')),
      h.write('.docker/config.json', entry('docker')),
      h.write('.dockercfg', { 'reg.example.com': { auth: b64('legacy:pw-legacy') } }),
    ];
    for (const expected of ['runtime', 'xdg', 'docker', 'legacy']) {
      assert.deepEqual(await lookupCredentials(key, h.opts()), basic(expected, `pw-${expected}`));
      fs.rmSync(files.shift() as string);
    }
    assert.equal(await lookupCredentials(key, h.opts()), undefined);
  });

  it('honours XDG_CONFIG_HOME and DOCKER_CONFIG', async () => {
    const h = newHome();
    h.env.XDG_CONFIG_HOME = path.join(h.home, 'xdg');
    h.env.DOCKER_CONFIG = path.join(h.home, 'dockercfgdir');
    h.write('.config/containers/auth.json', entry('ignored-xdg'));
    h.write('.docker/config.json', entry('ignored-docker'));
    h.write('dockercfgdir/config.json', entry('dockerconfig'));
    assert.deepEqual(await lookupCredentials(key, h.opts()), basic('dockerconfig', 'pw-dockerconfig'));
    h.write('xdg/containers/auth.json', entry('xdgconfig'));
    assert.deepEqual(await lookupCredentials(key, h.opts()), basic('xdgconfig', 'pw-xdgconfig'));
    assert.deepEqual(
      authFileSearchPath(h.opts()).map((l) => l.path),
      [
        path.join(h.runtime, 'containers/auth.json'),
        path.join(h.home, 'xdg/containers/auth.json'),
        path.join(h.home, 'dockercfgdir/config.json'),
        path.join(h.home, '.dockercfg'),
      ],
    );
  });

  it('skips a missing $XDG_RUNTIME_DIR and uses /run/containers/UID without one', async () => {
    const h = newHome();
    h.env.XDG_RUNTIME_DIR = path.join(h.home, 'does-not-exist');
    h.write('.docker/config.json', entry('docker'));
    assert.deepEqual(await lookupCredentials(key, h.opts()), basic('docker', 'pw-docker'));
    delete h.env.XDG_RUNTIME_DIR;
    assert.equal(authFileSearchPath(h.opts())[0]?.path, `/run/containers/${process.getuid?.() ?? 0}/auth.json`);
  });

  it('reads only the --authfile or REGISTRY_AUTH_FILE file, as skopeo does', async () => {
    const h = newHome();
    h.write(path.join(h.runtime, 'containers/auth.json'), entry('runtime'));
    const envFile = h.write('env-auth.json', { auths: { 'other.example.com': { auth: b64('x:y') } } });
    const flagFile = h.write('flag-auth.json', entry('flag'));
    h.env.REGISTRY_AUTH_FILE = envFile;
    assert.equal(await lookupCredentials(key, h.opts()), undefined);
    assert.deepEqual(await lookupCredentials(key, h.opts({ authFile: flagFile })), basic('flag', 'pw-flag'));
    assert.equal(await lookupCredentials(key, h.opts({ authFile: path.join(h.home, 'missing.json') })), undefined);
  });
});

describe('auth file keys', () => {
  it('prefers the most specific repository or namespace key, on path boundaries', async () => {
    const h = newHome();
    const file = h.write('auth.json', {
      auths: {
        'quay.io': { auth: b64('registry:r') },
        'quay.io/ns': { auth: b64('namespace:n') },
        'quay.io/ns/repo': { auth: b64('repository:p') },
        'quay.io/o': { auth: b64('not-a-boundary:x') },
      },
    });
    const o = h.opts({ authFile: file });
    assert.deepEqual(await lookupCredentials({ registry: 'quay.io', repository: 'ns/repo' }, o), basic('repository', 'p'));
    assert.deepEqual(await lookupCredentials({ registry: 'quay.io', repository: 'ns/repo2' }, o), basic('namespace', 'n'));
    assert.deepEqual(await lookupCredentials({ registry: 'quay.io', repository: 'ns/repo/sub' }, o), basic('repository', 'p'));
    assert.deepEqual(await lookupCredentials({ registry: 'quay.io', repository: 'other/repo' }, o), basic('registry', 'r'));
    assert.equal(await lookupCredentials({ registry: 'quay.io:8443', repository: 'ns/repo' }, o), undefined);
  });

  it('matches URL keys and every Docker Hub host name', async () => {
    const h = newHome();
    const hub = h.write('hub.json', { auths: { 'https://index.docker.io/v1/': { auth: b64('hub:h') } } });
    for (const registry of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      assert.deepEqual(await lookupCredentials({ registry, repository: 'library/busybox' }, h.opts({ authFile: hub })), basic('hub', 'h'));
    }
    const other = h.write('other.json', { auths: { 'registry-1.docker.io': { auth: b64('r1:x') }, 'http://myreg:5000/v2/': { auth: b64('my:reg') } } });
    assert.deepEqual(await lookupCredentials({ registry: 'docker.io', repository: 'library/busybox' }, h.opts({ authFile: other })), basic('r1', 'x'));
    assert.deepEqual(await lookupCredentials({ registry: 'myreg:5000', repository: 'a' }, h.opts({ authFile: other })), basic('my', 'reg'));
    assert.equal(await lookupCredentials({ registry: 'myreg', repository: 'a' }, h.opts({ authFile: other })), undefined);
    const namespaced = h.write('ns.json', { auths: { 'docker.io/library': { auth: b64('lib:l') }, 'docker.io': { auth: b64('all:a') } } });
    assert.deepEqual(await lookupCredentials({ registry: 'registry-1.docker.io', repository: 'library/busybox' }, h.opts({ authFile: namespaced })), basic('lib', 'l'));
    assert.deepEqual(await lookupCredentials({ registry: 'docker.io', repository: 'me/app' }, h.opts({ authFile: namespaced })), basic('all', 'a'));
  });

  it('reads ~/.dockercfg by registry only, including URL keys', async () => {
    const h = newHome();
    h.write('.dockercfg', { 'https://legacy.example.com/v1/': { auth: b64('old:o'), email: 'x@example.com' }, 'legacy.example.com/ns': { auth: b64('ns:n') } });
    assert.deepEqual(await lookupCredentials({ registry: 'legacy.example.com', repository: 'ns/app' }, h.opts()), basic('old', 'o'));
  });

  it('returns identity tokens, trims NULs, and ignores entries without credentials', async () => {
    const h = newHome();
    const file = h.write('auth.json', {
      auths: {
        'token.example.com': { auth: b64('tokenuser:'), identitytoken: 'refresh-xyz' },
        'bare-token.example.com': { identitytoken: 'refresh-only' },
        'nul.example.com': { auth: b64('u:p\0\0') },
        'nocolon.example.com': { auth: b64('justauser') },
        'marker.example.com': {},
      },
    });
    const o = h.opts({ authFile: file });
    assert.deepEqual(await lookupCredentials({ registry: 'token.example.com', repository: 'a' }, o), { kind: 'identityToken', username: 'tokenuser', token: 'refresh-xyz' });
    assert.deepEqual(await lookupCredentials({ registry: 'bare-token.example.com', repository: 'a' }, o), { kind: 'identityToken', username: '<token>', token: 'refresh-only' });
    assert.deepEqual(await lookupCredentials({ registry: 'nul.example.com', repository: 'a' }, o), basic('u', 'p'));
    assert.equal(await lookupCredentials({ registry: 'nocolon.example.com', repository: 'a' }, o), undefined);
    assert.equal(await lookupCredentials({ registry: 'marker.example.com', repository: 'a' }, o), undefined);
  });

  it('rejects malformed files without quoting secrets', async () => {
    const h = newHome();
    const truncated = h.write('truncated.json', `{"auths":{"a.example.com":{"auth":"${b64('leaky:s3cr3tpass')}"}`);
    await assert.rejects(
      lookupCredentials({ registry: 'a.example.com', repository: 'x' }, h.opts({ authFile: truncated })),
      (e: unknown) => e instanceof InvalidConfigError && e.message.includes(truncated) && !e.message.includes(b64('leaky:s3cr3tpass')),
    );
    const badB64 = h.write('bad.json', { auths: { 'a.example.com': { auth: 'c2VjcmV0!!not-base64' } } });
    await assert.rejects(
      lookupCredentials({ registry: 'a.example.com', repository: 'x' }, h.opts({ authFile: badB64 })),
      (e: unknown) => e instanceof InvalidConfigError && !e.message.includes('c2VjcmV0'),
    );
    const wrongType = h.write('type.json', { auths: { 'a.example.com': { auth: 42 } } });
    await assert.rejects(lookupCredentials({ registry: 'a.example.com', repository: 'x' }, h.opts({ authFile: wrongType })), InvalidConfigError);
  });

  it('rejects keys that are not host[:port] and repository paths', async () => {
    const h = newHome();
    await assert.rejects(lookupCredentials({ registry: 'https://quay.io', repository: 'a' }, h.opts()), InvalidArgumentError);
    await assert.rejects(lookupCredentials({ registry: 'quay.io', repository: 'a:latest' }, h.opts()), InvalidArgumentError);
    await assert.rejects(lookupCredentials({ registry: 'quay.io', repository: 'a@sha256:00' }, h.opts()), InvalidArgumentError);
  });
});

describe('credential helpers', () => {
  let h: Home;
  beforeEach(() => {
    h = newHome();
  });

  it('uses a credHelpers entry instead of the auths entry, sending host[:port] on stdin', async () => {
    const file = h.write('auth.json', { auths: { 'registry.example.com': { auth: b64('file:f') } }, credHelpers: { 'registry.example.com': 'test' } });
    assert.deepEqual(await lookupCredentials({ registry: 'registry.example.com', repository: 'ns/a' }, h.opts({ authFile: file })), basic('helperuser', 'helpersecret'));
    assert.deepEqual(h.asked(), ['registry.example.com']);
  });

  it('maps a "<token>" user to an identity token', async () => {
    const file = h.write('auth.json', { credHelpers: { 'token.example.com': 'test' } });
    assert.deepEqual(await lookupCredentials({ registry: 'token.example.com', repository: 'a' }, h.opts({ authFile: file })), {
      kind: 'identityToken',
      username: '<token>',
      token: 'refresh-abc',
    });
  });

  it('goes on to the next file when a helper has no credentials', async () => {
    h.write(path.join(h.runtime, 'containers/auth.json'), { credHelpers: { 'nothing.example.com': 'test' } });
    h.write('.docker/config.json', { auths: { 'nothing.example.com': { auth: b64('docker:d') } } });
    assert.deepEqual(await lookupCredentials({ registry: 'nothing.example.com', repository: 'a' }, h.opts()), basic('docker', 'd'));
    assert.deepEqual(h.asked(), ['nothing.example.com']);
  });

  it('asks credsStore after the auths entries, and for Docker Hub also under its legacy URL', async () => {
    h.write('.docker/config.json', {
      auths: { 'https://index.docker.io/v1/': {}, 'plain.example.com': { auth: b64('plain:p') } },
      credsStore: 'test',
    });
    assert.deepEqual(await lookupCredentials({ registry: 'docker.io', repository: 'library/busybox' }, h.opts()), basic('hubuser', 'hubsecret'));
    assert.deepEqual(h.asked(), ['docker.io', 'https://index.docker.io/v1/']);
    assert.deepEqual(await lookupCredentials({ registry: 'plain.example.com', repository: 'a' }, h.opts()), basic('plain', 'p'));
    assert.equal(h.asked().length, 2, 'an auths entry with credentials is used without asking the store');
    assert.equal(await lookupCredentials({ registry: 'unknown.example.com', repository: 'a' }, h.opts()), undefined);
    assert.equal(h.asked().at(-1), 'unknown.example.com');
  });

  it('reports a failing helper with its message', async () => {
    const file = h.write('auth.json', { credHelpers: { 'broken.example.com': 'test' } });
    await assert.rejects(
      lookupCredentials({ registry: 'broken.example.com', repository: 'a' }, h.opts({ authFile: file })),
      (e: unknown) => e instanceof CredentialHelperError && /keychain is locked/.test(e.message) && /docker-credential-test/.test(e.message),
    );
  });

  it('does not quote a helper answer that is not JSON', async () => {
    const file = h.write('auth.json', { credHelpers: { 'garbage.example.com': 'test' } });
    await assert.rejects(
      lookupCredentials({ registry: 'garbage.example.com', repository: 'a' }, h.opts({ authFile: file })),
      (e: unknown) => e instanceof CredentialHelperError && !e.message.includes('supersecret'),
    );
  });

  it('reports a helper missing from PATH', async () => {
    const file = h.write('auth.json', { credHelpers: { 'registry.example.com': 'nosuchhelper' } });
    await assert.rejects(
      lookupCredentials({ registry: 'registry.example.com', repository: 'a' }, h.opts({ authFile: file })),
      (e: unknown) => e instanceof CredentialHelperError && /docker-credential-nosuchhelper not found/.test(e.message),
    );
  });

  it('follows registries.conf credential-helpers, with containers-auth.json standing for the files', async () => {
    h.write('.docker/config.json', { auths: { 'registry.example.com': { auth: b64('file:f') }, 'other.example.com': { auth: b64('other:o') } } });
    assert.deepEqual(
      await lookupCredentials({ registry: 'registry.example.com', repository: 'a' }, h.opts({ credentialHelpers: ['test', 'containers-auth.json'] })),
      basic('helperuser', 'helpersecret'),
    );
    assert.deepEqual(
      await lookupCredentials({ registry: 'other.example.com', repository: 'a' }, h.opts({ credentialHelpers: ['test', 'containers-auth.json'] })),
      basic('other', 'o'),
    );
    assert.equal(await lookupCredentials({ registry: 'other.example.com', repository: 'a' }, h.opts({ credentialHelpers: ['test'] })), undefined);
    // An error in one helper does not hide credentials another one has.
    h.write('.docker/config.json', { auths: { 'broken.example.com': { auth: b64('fallback:f') } } });
    assert.deepEqual(
      await lookupCredentials({ registry: 'broken.example.com', repository: 'a' }, h.opts({ credentialHelpers: ['test', 'containers-auth.json'] })),
      basic('fallback', 'f'),
    );
  });
});

describe('auth files behind file descriptors', () => {
  it('reads /proc/self/fd/N of a regular file', async () => {
    const h = newHome();
    const file = h.write('fd-auth.json', { auths: { 'fd.example.com': { auth: b64('fduser:fdpass') } } });
    const fd = fs.openSync(file, 'r');
    try {
      fs.unlinkSync(file); // Only the descriptor is left.
      const o = h.opts({ authFile: `/proc/self/fd/${fd}` });
      assert.deepEqual(await lookupCredentials({ registry: 'fd.example.com', repository: 'a' }, o), basic('fduser', 'fdpass'));
      assert.deepEqual(await lookupCredentials({ registry: 'fd.example.com', repository: 'a' }, o), basic('fduser', 'fdpass'));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('reads a pipe once and answers later lookups sharing its ReadOnceFiles from what it read', async () => {
    const h = newHome();
    const [readEnd, writeEnd] = native.pipe();
    try {
      fs.writeSync(writeEnd, JSON.stringify({ auths: { 'pipe.example.com': { auth: b64('pipeuser:pipepass') }, 'quay.io/ns': { auth: b64('q:ns') } } }));
      native.close(writeEnd);
      const o = h.opts({ authFile: `/proc/self/fd/${readEnd}`, readOnceFiles: new ReadOnceFiles() });
      const [first, second] = await Promise.all([
        lookupCredentials({ registry: 'pipe.example.com', repository: 'a' }, o),
        lookupCredentials({ registry: 'quay.io', repository: 'ns/b' }, o),
      ]);
      assert.deepEqual(first, basic('pipeuser', 'pipepass'));
      assert.deepEqual(second, basic('q', 'ns'));
      assert.deepEqual(await lookupCredentials({ registry: 'pipe.example.com', repository: 'c' }, o), basic('pipeuser', 'pipepass'));
      // Another owner's cache has not read it: the pipe is empty for it now (what it held is not process-wide state).
      await assert.rejects(lookupCredentials({ registry: 'pipe.example.com', repository: 'c' }, { ...o, readOnceFiles: new ReadOnceFiles() }), InvalidConfigError);
    } finally {
      native.close(readEnd);
    }
  });
});

describe('cancelling a credentials lookup', () => {
  it('kills a credential helper that is still running and answers CancelledError', async () => {
    const h = newHome();
    const marker = path.join(h.home, 'helper-ran');
    const slow = path.join(binDir, 'docker-credential-slow');
    fs.writeFileSync(slow, `#!/bin/sh\ntouch "${marker}"\nexec sleep 30\n`, { mode: 0o755 });
    const controller = new AbortController();
    const started = Date.now();
    const lookup = lookupCredentials({ registry: 'slow.example.com', repository: 'a' }, h.opts({ credentialHelpers: ['slow', 'containers-auth.json'], signal: controller.signal }));
    while (!fs.existsSync(marker) && Date.now() - started < 5_000) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await assert.rejects(lookup, CancelledError);
    assert.ok(Date.now() - started < 5_000, 'did not wait for the helper to finish');
  });
});

describe('agreement with skopeo login --get-login', () => {
  const skopeo = '/usr/bin/skopeo';
  /** The user skopeo finds for a key, or undefined when it says "not logged into". */
  function skopeoUser(h: Home, key: string, authFile?: string): string | undefined {
    const args = ['login', '--get-login', ...(authFile === undefined ? [] : ['--authfile', authFile]), key];
    const r = spawnSync(skopeo, args, { env: h.env, cwd: h.home, encoding: 'utf8' });
    if (r.status === 0) return r.stdout.trim();
    assert.match(r.stderr, /not logged into/, `skopeo ${args.join(' ')} failed: ${r.stderr}`);
    return undefined;
  }
  async function ourUser(h: Home, key: string, authFile?: string): Promise<string | undefined> {
    const slash = key.indexOf('/');
    const registry = slash === -1 ? key : key.slice(0, slash);
    const repository = slash === -1 ? '' : key.slice(slash + 1);
    const found = await lookupCredentials({ registry, repository }, h.opts(authFile === undefined ? {} : { authFile }));
    return found?.username;
  }

  it('finds the same user for every key across all default files, URL keys and a credential helper', async (t) => {
    if (!fs.existsSync(skopeo)) {
      t.skip('skopeo is not installed');
      return;
    }
    const h = newHome();
    h.write(path.join(h.runtime, 'containers/auth.json'), {
      auths: { 'reg.example.com/runtime': { auth: b64('runtime-ns:x') } },
      credHelpers: { 'registry.example.com': 'test' },
    });
    h.write('.config/containers/auth.json', {
      auths: { 'reg.example.com/ns': { auth: b64('xdg-ns:x') }, 'reg.example.com/ns/app': { auth: b64('xdg-repo:x') }, 'only-xdg.example.com': { auth: b64('xdg:x') } },
    });
    h.write('.docker/config.json', {
      auths: {
        'reg.example.com': { auth: b64('docker-reg:x') },
        'https://index.docker.io/v1/': { auth: b64('hub:x') },
        'http://old.example.com:5000/v2/': { auth: b64('old-url:x') },
        'nothing.example.com': {},
      },
    });
    h.write('.dockercfg', { 'legacy.example.com': { auth: b64('legacy:x') }, 'reg.example.com': { auth: b64('legacy-reg:x') } });
    const keys = [
      'reg.example.com',
      'reg.example.com/ns',
      'reg.example.com/ns/app',
      'reg.example.com/ns/app2',
      'reg.example.com/runtime/x',
      'reg.example.com/other/app',
      'only-xdg.example.com/a',
      'docker.io/library/busybox',
      'old.example.com:5000/a',
      'old.example.com/a',
      'legacy.example.com/a/b',
      'registry.example.com/a',
      'nothing.example.com/a',
      'quay.io/a',
    ];
    for (const key of keys) assert.equal(await ourUser(h, key), skopeoUser(h, key), key);
    const explicit = h.write('explicit.json', { auths: { 'reg.example.com/ns': { auth: b64('explicit-ns:x') } } });
    for (const key of ['reg.example.com/ns/app', 'reg.example.com/ns']) {
      assert.equal(await ourUser(h, key, explicit), skopeoUser(h, key, explicit), `--authfile ${key}`);
    }
    // Deliberate difference: skopeo 1.9.3 (containers/image < 5.24) falls back to the default
    // files after --authfile; current containers tools, and layerpipe, read only that file.
    assert.equal(skopeoUser(h, 'reg.example.com/other', explicit), 'docker-reg');
    assert.equal(await ourUser(h, 'reg.example.com/other', explicit), undefined);
  });
});
