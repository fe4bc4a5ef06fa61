/**
 * Credentials lookup (server/config/auth.ts) against real files in a temporary home, and a real
 * docker-credential-test shell script on a temporary PATH.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { authFileSearchPath, lookupCredentials, ReadOnceFiles } from '../../server/config/auth';
import { parseCredsFlag } from '../../server/config/creds-flag';
import { CancelledError, CredentialHelperError, InvalidArgumentError, InvalidConfigError } from '../../protocol/errors';
import { native } from '../../protocol/seqpacket/native';
import { b64, basic, newHome, type Home } from '../harness/auth-home';

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
