/**
 * Which registries.conf files are read (system, user, explicit, drop-ins and their order), and
 * agreement with skopeo --registries-conf on the same files.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import {
  findRegistry,
  isInsecureRegistry,
  loadRegistriesConfig,
  pullSourcesFor,
  unqualifiedSearchRegistries,
  type RegistriesConfig,
} from '../../server/config/registries-conf';
import { BlockedRegistryError, InvalidConfigError } from '../../protocol/errors';
import { configOf, names, newDirs } from '../harness/registries-dirs';

describe('registries.conf files and drop-ins', () => {
  it('applies system drop-ins then user drop-ins in name order, per prefix', async () => {
    const d = newDirs();
    d.system(`
unqualified-search-registries = ["main.example.com"]
[[registry]]
location = "a.example.com"
[[registry.mirror]]
location = "main-mirror.local"
[[registry]]
location = "b.example.com"
insecure = true
`);
    d.systemDropIn('20-second.conf', '[[registry]]\nlocation = "a.example.com"\n[[registry.mirror]]\nlocation = "second-mirror.local"\n');
    d.systemDropIn('10-first.conf', 'unqualified-search-registries = ["first.example.com"]\n[[registry]]\nlocation = "a.example.com"\n[[registry.mirror]]\nlocation = "first-mirror.local"\n');
    d.systemDropIn('30-ignored.txt', 'this is not TOML at all [[[');
    d.write(path.join(d.systemDir, 'registries.conf.d', 'subdir.conf', 'inner.conf'), 'this is not TOML at all [[[');
    d.userDropIn('05-user.conf', '[[registry]]\nlocation = "c.example.com"\nblocked = true\n');
    const config = await d.load();
    assert.deepEqual(names(pullSourcesFor(config, 'a.example.com/app', 'tag')), ['second-mirror.local/app', 'a.example.com/app']);
    assert.equal(isInsecureRegistry(config, 'b.example.com'), true);
    assert.deepEqual(unqualifiedSearchRegistries(config), ['first.example.com']);
    assert.throws(() => pullSourcesFor(config, 'c.example.com/app', 'tag'), BlockedRegistryError);
    assert.deepEqual(config.files.map((f) => path.relative(d.dir, f)), [
      'etc-containers/registries.conf',
      'etc-containers/registries.conf.d/10-first.conf',
      'etc-containers/registries.conf.d/20-second.conf',
      'home/.config/containers/registries.conf.d/05-user.conf',
    ]);
  });

  it('lets a drop-in override settings and erase aliases it sets', async () => {
    const d = newDirs();
    d.system('short-name-mode = "disabled"\n[aliases]\n"app" = "quay.io/ns/app"\n"tool" = "quay.io/ns/tool"\n');
    d.systemDropIn('50.conf', 'short-name-mode = "enforcing"\nunqualified-search-registries = []\n[aliases]\n"app" = ""\n');
    const config = await d.load();
    assert.equal(config.shortNameMode, 'enforcing');
    assert.deepEqual([...config.aliases], [['tool', 'quay.io/ns/tool']]);
    assert.deepEqual(unqualifiedSearchRegistries(config), []);
  });

  it('requires the version 2 format in drop-ins', async () => {
    const d = newDirs();
    d.systemDropIn('v1.conf', '[registries.search]\nregistries = ["a.com"]\n');
    await assert.rejects(d.load(), (e: unknown) => e instanceof InvalidConfigError && /v1\.conf.*version 2/.test(e.message));
  });

  it('prefers the user registries.conf, and then reads only the user drop-ins', async () => {
    const d = newDirs();
    d.system('unqualified-search-registries = ["system.example.com"]');
    d.systemDropIn('10.conf', '[[registry]]\nlocation = "sys-dropin.example.com"\ninsecure = true\n');
    d.user('unqualified-search-registries = ["user.example.com"]');
    d.userDropIn('10.conf', '[[registry]]\nlocation = "user-dropin.example.com"\ninsecure = true\n');
    const config = await d.load();
    assert.deepEqual(unqualifiedSearchRegistries(config), ['user.example.com']);
    assert.equal(isInsecureRegistry(config, 'user-dropin.example.com'), true);
    assert.equal(isInsecureRegistry(config, 'sys-dropin.example.com'), false);
  });

  it('uses --registries-conf over CONTAINERS_REGISTRIES_CONF over the defaults; only an explicit file must exist', async () => {
    const d = newDirs();
    d.system('unqualified-search-registries = ["system.example.com"]');
    d.user('unqualified-search-registries = ["user.example.com"]');
    const envFile = d.write(path.join(d.dir, 'env.conf'), 'unqualified-search-registries = ["env.example.com"]');
    const flagFile = d.write(path.join(d.dir, 'flag.conf'), 'unqualified-search-registries = ["flag.example.com"]');
    assert.deepEqual(unqualifiedSearchRegistries(await d.load({ env: { CONTAINERS_REGISTRIES_CONF: envFile } })), ['env.example.com']);
    assert.deepEqual(unqualifiedSearchRegistries(await d.load({ env: { REGISTRIES_CONFIG_PATH: envFile } })), ['env.example.com']);
    assert.deepEqual(unqualifiedSearchRegistries(await d.load({ path: flagFile, env: { CONTAINERS_REGISTRIES_CONF: envFile } })), ['flag.example.com']);
    await assert.rejects(d.load({ path: path.join(d.dir, 'missing.conf') }), (e: unknown) => e instanceof InvalidConfigError && /missing\.conf/.test(e.message));
    const nothing = newDirs();
    const config = await nothing.load();
    assert.deepEqual(config.files, []);
    assert.deepEqual(pullSourcesFor(config, 'quay.io/a/b', 'digest'), [{ name: 'quay.io/a/b', insecure: false, mirror: false }]);
  });

  it('loads this machine\'s /etc/containers configuration', async (t) => {
    if (!fs.existsSync('/etc/containers/registries.conf')) {
      t.skip('no /etc/containers/registries.conf here');
      return;
    }
    const config = await loadRegistriesConfig({ homeDir: path.join(newDirs().dir, 'empty-home'), env: {} });
    assert.ok(config.files.includes('/etc/containers/registries.conf'));
    if (fs.existsSync('/etc/containers/registries.conf.d/shortnames.conf')) assert.equal(config.aliases.get('busybox'), 'docker.io/library/busybox');
  });
});

describe('agreement with skopeo --registries-conf', () => {
  const skopeo = '/usr/bin/skopeo';
  /** What skopeo 1.9.3 makes of a configuration: rejected, blocked, or accepted (then it fails to connect). */
  function skopeoVerdict(file: string, home: string, image: string): 'invalid' | 'blocked' | 'accepted' {
    const r = spawnSync(skopeo, ['--registries-conf', file, 'inspect', `docker://${image}`], { env: { PATH: '/usr/bin:/bin', HOME: home }, encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(r.status, 0, r.stdout);
    if (/loading registries configuration/.test(r.stderr)) return 'invalid';
    if (/is blocked in/.test(r.stderr)) return 'blocked';
    assert.match(r.stderr, /connection refused|pinging container registry/, r.stderr);
    return 'accepted';
  }
  async function ourVerdict(file: string, home: string, image: string): Promise<'invalid' | 'blocked' | 'accepted'> {
    let config: RegistriesConfig;
    try {
      config = await loadRegistriesConfig({ path: file, homeDir: home, systemDir: path.join(home, 'no-etc'), env: {} });
    } catch (err) {
      assert.ok(err instanceof InvalidConfigError, String(err));
      return 'invalid';
    }
    try {
      pullSourcesFor(config, image.replace(/:latest$/, ''), 'tag');
    } catch (err) {
      assert.ok(err instanceof BlockedRegistryError, String(err));
      return 'blocked';
    }
    return 'accepted';
  }

  it('accepts, rejects and blocks the same configurations', async (t) => {
    if (!fs.existsSync(skopeo)) {
      t.skip('skopeo is not installed');
      return;
    }
    const d = newDirs();
    const image = '127.0.0.1:1/ns/app:latest';
    const configs = [
      '[[registry]]\nprefix = "*.example.com/foo"\nlocation = "x.local"',
      '[[registry]]\nprefix = "example.*.com"\nlocation = "x.local"',
      '[[registry]]\nlocation = "https://example.com"',
      '[[registry]]\ninsecure = true',
      '[[registry]]\nprefix = "example.com"',
      '[[registry]]\nlocation = "a.com"\n[[registry.mirror]]\ninsecure = true',
      '[[registry]]\nlocation = "a.com"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.local"\npull-from-mirror = "tag-only"',
      '[[registry]]\nlocation = "a.com"\n[[registry.mirror]]\nlocation = "m.local"\npull-from-mirror = "sometimes"',
      '[[registry]]\nlocation = "a.com"\npull-from-mirror = "all"',
      '[[registry]]\nprefix = "x.com"\nlocation = "a.com"\ninsecure = true\n[[registry]]\nprefix = "y.com"\nlocation = "a.com"',
      '[[registry]]\nlocation = "a.com"\ninsecure = "yes"',
      'unqualified-search-registries = ["https://quay.io"]',
      'unqualified-search-registries = ["quay.io/ns"]',
      'short-name-mode = "lenient"',
      '[aliases]\n"app" = "app:latest"',
      '[aliases]\n"app" = "quay.io/ns/app:v1"',
      `[aliases]\n"app" = "quay.io/ns/app@sha256:${'0'.repeat(64)}"`,
      '[aliases]\n"App" = "quay.io/ns/app"',
      '[aliases]\n"app:v1" = "quay.io/ns/app"',
      '[aliases]\n"localhost/app" = "quay.io/app"',
      '[aliases]\n"app" = "ns/app"',
      '[aliases]\n"a--b" = "quay.io/Ns/app"',
      '[aliases]\n"library/app" = "docker.io/app"\n"app" = ""',
      '[[registry]\nlocation = "x"',
      '[registries.search]\nregistries = ["a.com"]\n[[registry]]\nlocation = "b.com"',
      '[[registry]]\nlocation = "127.0.0.1:1"\nblocked = true',
      '[[registry]]\nprefix = "127.0.0.1:1/ns"\nlocation = "127.0.0.1:1/ns"\nblocked = true',
      '[[registry]]\nprefix = "127.0.0.1:1/other"\nlocation = "127.0.0.1:1/other"\nblocked = true',
      '[registries.block]\nregistries = ["127.0.0.1:1"]',
      '[registries.insecure]\nregistries = ["127.0.0.1:1"]',
      'unqualified-search-registries = ["quay.io", "localhost:5000"]\nshort-name-mode = "disabled"\n[[registry]]\nprefix = "*.example.com"\n[[registry.mirror]]\nlocation = "m.local"\npull-from-mirror = "digest-only"',
    ];
    for (const [i, text] of configs.entries()) {
      const file = d.write(path.join(d.dir, `${i}.conf`), text);
      assert.equal(await ourVerdict(file, d.home, image), skopeoVerdict(file, d.home, image), text);
    }
  });
});
