/**
 * registries.conf loading and name mapping (server/config/registries-conf.ts) with real files
 * in temporary system and home directories.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import {
  findRegistry,
  isInsecureRegistry,
  loadRegistriesConfig,
  pullSourcesFor,
  unqualifiedSearchRegistries,
  type RegistriesConfig,
} from '../../server/config/registries-conf';
import { BlockedRegistryError, InvalidConfigError } from '../../protocol/errors';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-registries-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let caseNo = 0;
/** A fresh /etc/containers stand-in and home; nothing from the real machine is read. */
function newDirs() {
  const dir = path.join(root, `case${++caseNo}`);
  const systemDir = path.join(dir, 'etc-containers');
  const home = path.join(dir, 'home');
  fs.mkdirSync(systemDir, { recursive: true });
  fs.mkdirSync(home, { recursive: true });
  const write = (file: string, text: string): string => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return file;
  };
  return {
    dir,
    systemDir,
    home,
    write,
    system: (text: string) => write(path.join(systemDir, 'registries.conf'), text),
    systemDropIn: (name: string, text: string) => write(path.join(systemDir, 'registries.conf.d', name), text),
    user: (text: string) => write(path.join(home, '.config/containers/registries.conf'), text),
    userDropIn: (name: string, text: string) => write(path.join(home, '.config/containers/registries.conf.d', name), text),
    load: (extra: { path?: string; env?: NodeJS.ProcessEnv } = {}) => loadRegistriesConfig({ systemDir, homeDir: home, env: {}, ...extra }),
  };
}

/** Loads a single explicit file. */
async function configOf(text: string): Promise<RegistriesConfig> {
  const d = newDirs();
  return d.load({ path: d.write(path.join(d.dir, 'explicit.conf'), text) });
}

const names = (sources: { name: string }[]) => sources.map((s) => s.name);

describe('pull sources', () => {
  it('follows the man page example: mirrors in order, then the rewritten primary', async () => {
    const config = await configOf(`
unqualified-search-registries = ["example.com"]

[[registry]]
prefix = "example.com/foo"
insecure = false
blocked = false
location = "internal-registry-for-example.com/bar"

[[registry.mirror]]
location = "example-mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "example-mirror-1.local/mirrors/foo"
insecure = true

[[registry]]
location = "registry.com"

[[registry.mirror]]
location = "mirror.registry.com"
`);
    assert.deepEqual(pullSourcesFor(config, 'example.com/foo/image', 'tag'), [
      { name: 'example-mirror-0.local/mirror-for-foo/image', insecure: false, mirror: true },
      { name: 'example-mirror-1.local/mirrors/foo/image', insecure: true, mirror: true },
      { name: 'internal-registry-for-example.com/bar/image', insecure: false, mirror: false },
    ]);
    assert.deepEqual(names(pullSourcesFor(config, 'registry.com/image', 'tag')), ['mirror.registry.com/image', 'registry.com/image']);
    assert.deepEqual(pullSourcesFor(config, 'quay.io/other/image', 'tag'), [{ name: 'quay.io/other/image', insecure: false, mirror: false }]);
    assert.deepEqual(unqualifiedSearchRegistries(config), ['example.com']);
  });

  it('keeps a tag or digest through the rewrite', async () => {
    const config = await configOf(`[[registry]]\nprefix = "a.example.com/ns"\nlocation = "b.example.com:5000/mirror/ns"\n`);
    assert.deepEqual(names(pullSourcesFor(config, 'a.example.com/ns/app:v1', 'tag')), ['b.example.com:5000/mirror/ns/app:v1']);
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(names(pullSourcesFor(config, `a.example.com/ns/app@${digest}`, 'digest')), [`b.example.com:5000/mirror/ns/app@${digest}`]);
  });

  it('picks the longest matching prefix, on path boundaries', async () => {
    const config = await configOf(`
[[registry]]
location = "registry.example.com"
[[registry.mirror]]
location = "general-mirror.local"

[[registry]]
prefix = "registry.example.com/special"
location = "special.local/s"

[[registry]]
prefix = "docker.io/library/alpine"
location = "alpine-mirror.local/alpine"
`);
    assert.deepEqual(names(pullSourcesFor(config, 'registry.example.com/special/app', 'tag')), ['special.local/s/app']);
    assert.deepEqual(names(pullSourcesFor(config, 'registry.example.com/specialist/app', 'tag')), ['general-mirror.local/specialist/app', 'registry.example.com/specialist/app']);
    assert.deepEqual(names(pullSourcesFor(config, 'docker.io/library/alpine', 'tag')), ['alpine-mirror.local/alpine']);
    assert.deepEqual(names(pullSourcesFor(config, 'docker.io/library/alpinex', 'tag')), ['docker.io/library/alpinex']);
    // As in containers tools, a host prefix also matches the same host with a port.
    assert.equal(findRegistry(config, 'registry.example.com:5000/app')?.prefix, 'registry.example.com');
    assert.equal(findRegistry(config, 'registry.example.community/app'), undefined);
  });

  it('filters mirrors by pull-from-mirror and mirror-by-digest-only', async () => {
    const config = await configOf(`
[[registry]]
location = "per-mirror.example.com"
[[registry.mirror]]
location = "all.local"
[[registry.mirror]]
location = "digest.local"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tag.local"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "explicit-all.local"
pull-from-mirror = "all"

[[registry]]
location = "by-digest.example.com"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m1.local"
[[registry.mirror]]
location = "m2.local"
`);
    assert.deepEqual(names(pullSourcesFor(config, 'per-mirror.example.com/a', 'tag')), ['all.local/a', 'tag.local/a', 'explicit-all.local/a', 'per-mirror.example.com/a']);
    assert.deepEqual(names(pullSourcesFor(config, 'per-mirror.example.com/a', 'digest')), ['all.local/a', 'digest.local/a', 'explicit-all.local/a', 'per-mirror.example.com/a']);
    assert.deepEqual(names(pullSourcesFor(config, 'by-digest.example.com/a', 'tag')), ['by-digest.example.com/a']);
    assert.deepEqual(names(pullSourcesFor(config, 'by-digest.example.com/a', 'digest')), ['m1.local/a', 'm2.local/a', 'by-digest.example.com/a']);
  });

  it('refuses blocked registries and namespaces, and skips blocked mirrors', async () => {
    const config = await configOf(`
[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
prefix = "open.example.com/secret"
location = "open.example.com/secret"
blocked = true

[[registry]]
location = "open.example.com"
[[registry.mirror]]
location = "blocked.example.com/mirror"
[[registry.mirror]]
location = "fine-mirror.local"

[[registry]]
prefix = "redirect.example.com"
location = "blocked.example.com/redirected"
`);
    assert.throws(() => pullSourcesFor(config, 'blocked.example.com/a', 'tag'), (e: unknown) => e instanceof BlockedRegistryError && e.code === 'LP_ERR_BLOCKED_REGISTRY' && /blocked\.example\.com/.test(e.message));
    assert.throws(() => pullSourcesFor(config, 'open.example.com/secret/a', 'tag'), BlockedRegistryError);
    assert.deepEqual(names(pullSourcesFor(config, 'open.example.com/public/a', 'tag')), ['fine-mirror.local/public/a', 'open.example.com/public/a']);
    assert.throws(() => pullSourcesFor(config, 'redirect.example.com/a', 'tag'), BlockedRegistryError);
  });

  it('matches wildcard subdomain prefixes', async () => {
    const config = await configOf(`
[[registry]]
prefix = "*.example.com"
insecure = true
[[registry.mirror]]
location = "wild-mirror.local"

[[registry]]
prefix = "*.rewrite.test"
location = "rewritten.local/all"

[[registry]]
prefix = "*.deep.example.com"
location = ""
blocked = true
`);
    assert.deepEqual(pullSourcesFor(config, 'a.b.example.com/ns/app', 'tag'), [
      { name: 'wild-mirror.local/ns/app', insecure: false, mirror: true },
      { name: 'a.b.example.com/ns/app', insecure: true, mirror: false },
    ]);
    assert.equal(findRegistry(config, 'example.com/app'), undefined);
    assert.equal(findRegistry(config, 'evil-example.com/app'), undefined);
    assert.equal(findRegistry(config, 'a.example.com.evil.org/app'), undefined);
    assert.equal(findRegistry(config, 'evil.org/a.example.com/app'), undefined);
    // The longer wildcard wins although it sorts first.
    assert.throws(() => pullSourcesFor(config, 'x.deep.example.com/app', 'tag'), BlockedRegistryError);
    assert.equal(isInsecureRegistry(config, 'x.example.com:5000'), true);
    assert.equal(isInsecureRegistry(config, 'example.com'), false);
    assert.deepEqual(names(pullSourcesFor(config, 'x.rewrite.test/app', 'tag')), ['rewritten.local/all/app']);
  });

  it('reports a rewrite that yields no repository', async () => {
    const config = await configOf(`[[registry]]\nprefix = "example.com/foo"\nlocation = "internal.local"\n`);
    assert.throws(() => pullSourcesFor(config, 'example.com/foo', 'tag'), InvalidConfigError);
  });
});

describe('registries.conf checks', () => {
  const rejects = async (text: string, pattern: RegExp) => {
    await assert.rejects(configOf(text), (e: unknown) => e instanceof InvalidConfigError && pattern.test(e.message), pattern.source);
  };
  it('rejects malformed wildcards, schemes and missing fields', async () => {
    await rejects('[[registry]]\nprefix = "*.example.com/foo"\nlocation = "x.local"', /wildcard/i);
    await rejects('[[registry]]\nlocation = "https://example.com"', /URI schemes/);
    await rejects('[[registry]]\ninsecure = true', /both location and prefix are unset/);
    await rejects('[[registry]]\nprefix = "example.com"', /location is unset/);
    await rejects('[[registry]]\nlocation = "a.com"\n[[registry.mirror]]\ninsecure = true', /mirror location is unset|location is unset/);
  });
  it('rejects bad mirror settings and conflicting tables', async () => {
    await rejects('[[registry]]\nlocation = "a.com"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.local"\npull-from-mirror = "tag-only"', /mirror-by-digest-only/);
    await rejects('[[registry]]\nlocation = "a.com"\n[[registry.mirror]]\nlocation = "m.local"\npull-from-mirror = "sometimes"', /pull-from-mirror/);
    await rejects('[[registry]]\nlocation = "a.com"\npull-from-mirror = "all"', /pull-from-mirror/);
    await rejects('[[registry]]\nprefix = "x.com"\nlocation = "a.com"\ninsecure = true\n[[registry]]\nprefix = "y.com"\nlocation = "a.com"', /conflicting 'insecure'/);
    await rejects('[[registry]]\nlocation = "a.com"\ninsecure = "yes"', /insecure must be true or false/);
  });
  it('rejects bad global settings and TOML syntax, naming the file', async () => {
    await rejects('unqualified-search-registries = ["https://quay.io"]', /URI schemes/);
    await rejects('unqualified-search-registries = ["quay.io/ns"]', /unqualified-search-registries/);
    await rejects('short-name-mode = "lenient"', /short-name-mode/);
    await rejects('[aliases]\n"app" = "app:latest"', /alias/);
    await rejects('[[registry]\nlocation = "x"', /explicit\.conf.*not valid TOML/);
  });
  it('parses short-name-mode, aliases and credential-helpers, with defaults', async () => {
    const config = await configOf('short-name-mode = "enforcing"\ncredential-helpers = ["pass", "containers-auth.json"]\n[aliases]\n"app" = "quay.io/ns/app"\n');
    assert.equal(config.shortNameMode, 'enforcing');
    assert.deepEqual(config.credentialHelpers, ['pass', 'containers-auth.json']);
    assert.equal(config.aliases.get('app'), 'quay.io/ns/app');
    const empty = await configOf('');
    assert.equal(empty.shortNameMode, 'permissive');
    assert.deepEqual(empty.credentialHelpers, ['containers-auth.json']);
    assert.deepEqual(empty.registries, []);
  });
  it('converts the version 1 format and refuses to mix formats', async () => {
    const config = await configOf(`
[registries.search]
registries = ['registry1.com', 'registry2.com']
[registries.insecure]
registries = ['registry3.com']
[registries.block]
registries = ['registry.untrusted.com', 'registry.unsafe.com/']
`);
    assert.deepEqual(unqualifiedSearchRegistries(config), ['registry1.com', 'registry2.com']);
    assert.equal(isInsecureRegistry(config, 'registry3.com'), true);
    assert.equal(isInsecureRegistry(config, 'registry1.com'), false);
    assert.throws(() => pullSourcesFor(config, 'registry.unsafe.com/a', 'tag'), BlockedRegistryError);
    assert.deepEqual(names(pullSourcesFor(config, 'registry3.com/a', 'tag')), ['registry3.com/a']);
    await rejects('[registries.search]\nregistries = ["a.com"]\n[[registry]]\nlocation = "b.com"', /mixes the version 1/);
  });
});

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
    const config = await loadRegistriesConfig({ homeDir: path.join(root, 'empty-home'), env: {} });
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
