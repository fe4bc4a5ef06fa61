/**
 * registries.conf loading and name mapping (server/config/registries-conf.ts) with real files
 * in temporary system and home directories.
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
} from '../../server/config/registries-conf';
import { BlockedRegistryError, InvalidConfigError } from '../../protocol/errors';
import { configOf, names, newDirs } from '../harness/registries-dirs';

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
  it('reads comment lines as comments, and only them (blanked before parsing, line numbers kept)', async () => {
    const commented = await configOf('# head\n  # indented\t# twice\ncredential-helpers = [\n  # inside an array\n  "pass", # after a value\n]\n#\n[aliases]\n"app" = "quay.io/ns/app"\n');
    assert.deepEqual(commented.credentialHelpers, ['pass']);
    assert.equal(commented.aliases.get('app'), 'quay.io/ns/app');
    // In a multi-line string a line starting with # is text.
    const text = await configOf('credential-helpers = ["""first\n# second"""]\n');
    assert.deepEqual(text.credentialHelpers, ['first\n# second']);
    // Errors name the line they are on, after comment lines; a control character in a comment is still refused.
    await rejects('# one\n# two\n[[registry]\nlocation = "x"', /line 3/);
    await rejects('# a bell \u0007 in a comment\n', /not valid TOML/);
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
