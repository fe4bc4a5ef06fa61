/**
 * Credential helpers (docker-credential-NAME, run for real), auth files behind file descriptors,
 * cancelled lookups, and agreement with `skopeo login --get-login`.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { authFileSearchPath, lookupCredentials, ReadOnceFiles } from '../../server/config/auth';
import { CancelledError, CredentialHelperError, InvalidArgumentError, InvalidConfigError } from '../../protocol/errors';
import { native } from '../../protocol/seqpacket/native';
import { b64, basic, binDir, newHome, type Home } from '../harness/auth-home';

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
