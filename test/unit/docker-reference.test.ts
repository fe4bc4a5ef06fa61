/**
 * docker:// reference parsing: normalisation (docker.io, library/, latest), tags, digests,
 * ports, IPv6 literals, and the errors for everything the grammar refuses. Plus the pieces of
 * the transport that need no registry: flags, challenges, Retry-After, proxies, redaction.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { defaultOptions, parseFlags, parseGoDuration, UsageError } from '../../server/cli/flags';
import { InvalidArgumentError } from '../../protocol/errors';
import { parseImageName } from '../../server/transports/all';
import { parseChallenges, parseTokenResponse } from '../../server/transports/docker/auth';
import { retryAfterMs } from '../../server/transports/docker/retry';
import { proxyFor, redactUrl } from '../../server/transports/docker/http';
import {
  endpointHost, inRegistry, manifestSelector, parseDockerReference, policyIdentityOf, policyNamespacesOf, referenceString, renamed, shortRepositoryOf,
} from '../../server/reference/docker-reference';

const D = `sha256:${'a'.repeat(64)}`;

describe('docker reference parsing', () => {
  const good: [string, string, { registry: string; repository: string; tag?: string; digest?: string; shortName: boolean }][] = [
    ['busybox', 'docker.io/library/busybox:latest', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', shortName: true }],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', { registry: 'docker.io', repository: 'library/busybox', tag: '1.36', shortName: true }],
    ['fedora/httpd', 'docker.io/fedora/httpd:latest', { registry: 'docker.io', repository: 'fedora/httpd', tag: 'latest', shortName: true }],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', shortName: false }],
    ['index.docker.io/busybox', 'docker.io/library/busybox:latest', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', shortName: false }],
    ['quay.io/a/b/c:v1.2_3-x', 'quay.io/a/b/c:v1.2_3-x', { registry: 'quay.io', repository: 'a/b/c', tag: 'v1.2_3-x', shortName: false }],
    ['localhost/x', 'localhost/x:latest', { registry: 'localhost', repository: 'x', tag: 'latest', shortName: false }],
    ['localhost:5000/x:y', 'localhost:5000/x:y', { registry: 'localhost:5000', repository: 'x', tag: 'y', shortName: false }],
    ['127.0.0.1:5000/ns/x', '127.0.0.1:5000/ns/x:latest', { registry: '127.0.0.1:5000', repository: 'ns/x', tag: 'latest', shortName: false }],
    ['[::1]:5000/x:t', '[::1]:5000/x:t', { registry: '[::1]:5000', repository: 'x', tag: 't', shortName: false }],
    ['[2001:db8::1]/x', '[2001:db8::1]/x:latest', { registry: '[2001:db8::1]', repository: 'x', tag: 'latest', shortName: false }],
    [`[fe80::1]:5000/ns/x:t@${D}`, `[fe80::1]:5000/ns/x:t@${D}`, { registry: '[fe80::1]:5000', repository: 'ns/x', tag: 't', digest: D, shortName: false }],
    ['localhost:5000', 'docker.io/library/localhost:5000', { registry: 'docker.io', repository: 'library/localhost', tag: '5000', shortName: true }],
    [`quay.io/a/b@${D}`, `quay.io/a/b@${D}`, { registry: 'quay.io', repository: 'a/b', digest: D, shortName: false }],
    [`quay.io/a/b:tag@${D}`, `quay.io/a/b:tag@${D}`, { registry: 'quay.io', repository: 'a/b', tag: 'tag', digest: D, shortName: false }],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, { registry: 'docker.io', repository: 'library/busybox', digest: D, shortName: true }],
    ['Example.COM/x', 'Example.COM/x:latest', { registry: 'Example.COM', repository: 'x', tag: 'latest', shortName: false }],
    ['a.b/x__y/z.w-v---u', 'a.b/x__y/z.w-v---u:latest', { registry: 'a.b', repository: 'x__y/z.w-v---u', tag: 'latest', shortName: false }],
  ];
  for (const [input, expected, fields] of good) {
    it(`parses ${input}`, () => {
      const ref = parseDockerReference(input);
      assert.equal(referenceString(ref), expected);
      assert.equal(ref.registry, fields.registry);
      assert.equal(ref.repository, fields.repository);
      assert.equal(ref.tag, fields.tag);
      assert.equal(ref.digest, fields.digest);
      assert.equal(ref.shortName, fields.shortName);
    });
  }

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['docker.io/Library/busybox', /lowercase/],
    ['a'.repeat(64), /image ID/],
    ['busybox:', /malformed tag/],
    ['busybox:-x', /malformed tag/],
    [`busybox:${'t'.repeat(129)}`, /malformed tag/],
    ['busybox@sha256:abc', /malformed digest/],
    [`busybox@sha256:${'A'.repeat(64)}`, /invalid checksum digest format/],
    [`busybox@md5:${'a'.repeat(32)}`, /unsupported digest algorithm/],
    ['quay.io/', /missing repository/],
    ['quay.io//x', /malformed repository/],
    ['quay.io/x/', /malformed repository/],
    ['quay.io/-x', /malformed repository/],
    ['quay.io/x..y', /malformed repository/],
    ['-bad.io/x', /malformed registry/],
    ['host:port/x', /malformed registry/],
    ['[::1/x', /malformed registry/],
    ['[::1]x/y', /malformed registry/],
    ['[::1]:/y', /malformed registry/],
    ['[zz::1]/y', /malformed registry/],
    ['a-.io/x', /malformed registry/],
    ['a..io/x', /malformed registry/],
    ['q.io/a-.b', /malformed repository/],
    ['q.io/a._b', /malformed repository/],
    ['q.io/a___b', /malformed repository/],
    ['x:y:z', /malformed tag/],
    [`x@sha256:${'a'.repeat(64)}@sha256:${'a'.repeat(64)}`, /malformed digest/],
    ['a b', /malformed repository/],
    [`q.io/${'x/'.repeat(130)}x`, /255 characters/],
  ];
  for (const [input, why] of bad) {
    it(`refuses ${JSON.stringify(input.slice(0, 40))}`, () => {
      assert.throws(() => parseDockerReference(input), (err: unknown) => err instanceof InvalidArgumentError && why.test(err.message));
    });
  }

  it('asks the manifest endpoint for the digest when both tag and digest are given', () => {
    assert.equal(manifestSelector(parseDockerReference(`q.io/a:t@${D}`)), D);
    assert.equal(manifestSelector(parseDockerReference('q.io/a:t')), 't');
  });

  it('connects to Docker Hub through its API host', () => {
    assert.equal(endpointHost('docker.io'), 'registry-1.docker.io');
    assert.equal(endpointHost('quay.io'), 'quay.io');
  });

  it('moves a short name to a search registry (library/ only on docker.io)', () => {
    const ref = parseDockerReference('busybox:1');
    assert.equal(shortRepositoryOf(ref), 'busybox');
    assert.equal(referenceString(inRegistry(ref, 'quay.io')), 'quay.io/busybox:1');
    assert.equal(referenceString(inRegistry(ref, 'docker.io')), 'docker.io/library/busybox:1');
    assert.equal(referenceString(inRegistry(ref, 'index.docker.io')), 'docker.io/library/busybox:1');
    assert.equal(referenceString(inRegistry(ref, '[::1]:5000')), '[::1]:5000/busybox:1');
    assert.equal(inRegistry(ref, 'quay.io').shortName, false);
  });

  it('keeps a short name as written: library/x stays library/x in other registries', () => {
    const ref = parseDockerReference(`library/busybox@${D}`);
    assert.equal(ref.repository, 'library/busybox');
    assert.equal(shortRepositoryOf(ref), 'library/busybox');
    assert.equal(referenceString(inRegistry(ref, 'quay.io')), `quay.io/library/busybox@${D}`);
    assert.equal(parseDockerReference('quay.io/x').shortRepository, undefined);
  });

  it('renames keeping the tag or digest, normalising the new name and its length', () => {
    assert.equal(referenceString(renamed(parseDockerReference('app'), 'docker.io/app')), 'docker.io/library/app:latest');
    assert.equal(referenceString(renamed(parseDockerReference(`app:v2@${D}`), 'quay.io/ns/app')), `quay.io/ns/app:v2@${D}`);
    assert.throws(() => inRegistry(parseDockerReference(`${'x/'.repeat(120)}x`), `${'r'.repeat(20)}.io`), /255 characters/);
  });

  it('is reached through parseImageName as docker://', () => {
    assert.equal(parseImageName('docker://busybox').toString(), 'docker://docker.io/library/busybox:latest');
    assert.equal(parseImageName('docker://[::1]:5000/x@' + D).toString(), `docker://[::1]:5000/x@${D}`);
    assert.throws(() => parseImageName('docker:busybox'), /does not start with \/\//);
    assert.throws(() => parseImageName('docker://UPPER'), InvalidArgumentError);
  });
});

describe('signature policy scopes of docker references', () => {
  // containers/image docker/policyconfiguration/naming_test.go's table, plus IPv6 literals.
  const table: [string, string[]][] = [
    ['example.com/ns/repo', ['example.com/ns/repo', 'example.com/ns', 'example.com', '*.com']],
    ['example.com/repo', ['example.com/repo', 'example.com', '*.com']],
    ['localhost/ns/repo', ['localhost/ns/repo', 'localhost/ns', 'localhost']],
    ['localhost/repo', ['localhost/repo', 'localhost']],
    ['notlocalhost/repo', ['docker.io/notlocalhost/repo', 'docker.io/notlocalhost', 'docker.io', '*.io']],
    ['docker.io/ns/repo', ['docker.io/ns/repo', 'docker.io/ns', 'docker.io', '*.io']],
    ['docker.io/library/repo', ['docker.io/library/repo', 'docker.io/library', 'docker.io', '*.io']],
    ['docker.io/repo', ['docker.io/library/repo', 'docker.io/library', 'docker.io', '*.io']],
    ['ns/repo', ['docker.io/ns/repo', 'docker.io/ns', 'docker.io', '*.io']],
    ['library/repo', ['docker.io/library/repo', 'docker.io/library', 'docker.io', '*.io']],
    ['repo', ['docker.io/library/repo', 'docker.io/library', 'docker.io', '*.io']],
    ['yet.another.example.com:8443/ns/repo', [
      'yet.another.example.com:8443/ns/repo', 'yet.another.example.com:8443/ns', 'yet.another.example.com:8443',
      '*.another.example.com', '*.example.com', '*.com',
    ]],
    ['[::1]:5000/ns/repo', ['[::1]:5000/ns/repo', '[::1]:5000/ns', '[::1]:5000']],
    ['[2001:db8::1]/repo', ['[2001:db8::1]/repo', '[2001:db8::1]']],
    ['127.0.0.1:5000/repo', ['127.0.0.1:5000/repo', '127.0.0.1:5000', '*.0.0.1', '*.0.1', '*.1']],
  ];
  for (const [name, namespaces] of table) {
    for (const suffix of [':tag', `@${D}`]) {
      it(`${name}${suffix.slice(0, 8)}`, () => {
        const ref = parseDockerReference(name + suffix);
        assert.equal(policyIdentityOf(ref), namespaces[0] + suffix);
        assert.deepEqual(policyNamespacesOf(ref), namespaces);
      });
    }
  }

  it('uses latest when no tag was given, and the digest when both were', () => {
    assert.equal(policyIdentityOf(parseDockerReference('busybox')), 'docker.io/library/busybox:latest');
    assert.equal(policyIdentityOf(parseDockerReference(`quay.io/a:t@${D}`)), `quay.io/a@${D}`);
  });
});

const pickTuning = (r: { stallTimeoutMs: number; retryAttempts: number; retryDelayMs: number }) =>
  ({ stallTimeoutMs: r.stallTimeoutMs, retryAttempts: r.retryAttempts, retryDelayMs: r.retryDelayMs });

describe('registry flags', () => {
  it('fills RegistryOptions', () => {
    const { options } = parseFlags('experimental-image-proxy', [
      '--authfile', '/proc/self/fd/100', '--cert-dir=/certs', '--tls-verify=false', '--registries-conf', '/r.conf',
      '--command-timeout', '1m30s', '--registry-token', 'tok', '--creds', 'u:p:w', '--registries.d', '/rd',
    ]);
    const { stallTimeoutMs, retryAttempts, retryDelayMs, parallelRanges } = defaultOptions().registry;
    assert.deepEqual(options.registry, {
      tlsVerify: false, certDir: '/certs', authFile: '/proc/self/fd/100', credentials: { username: 'u', password: 'p:w' },
      registryToken: 'tok', noCreds: false, registriesConf: '/r.conf', registriesDir: '/rd', commandTimeoutMs: 90_000, stallTimeoutMs, retryAttempts, retryDelayMs,
      parallelRanges,
    });
  });
  it('reads the registry tuning from the environment, with defaults', () => {
    assert.deepEqual(pickTuning(defaultOptions({}).registry), { stallTimeoutMs: 30_000, retryAttempts: 5, retryDelayMs: 500 });
    const env = { LAYERPIPE_STALL_TIMEOUT_MS: '400', LAYERPIPE_RETRY_ATTEMPTS: '0', LAYERPIPE_RETRY_DELAY_MS: 'soon' };
    assert.deepEqual(pickTuning(defaultOptions(env).registry), { stallTimeoutMs: 400, retryAttempts: 1, retryDelayMs: 500 });
  });
  it('takes --username with --password, and --no-creds', () => {
    assert.deepEqual(parseFlags('inspect', ['--username', 'a', '--password', 'b']).options.registry.credentials, { username: 'a', password: 'b' });
    assert.equal(parseFlags('inspect', ['--no-creds']).options.registry.noCreds, true);
    assert.equal(parseFlags('inspect', ['--tls-verify']).options.registry.tlsVerify, true);
  });
  it('refuses the combinations skopeo refuses', () => {
    for (const argv of [
      ['--creds', 'a:b', '--no-creds'], ['--no-creds', '--username', 'a', '--password', 'b'], ['--creds', 'a:b', '--username', 'a'],
      ['--username', 'a'], ['--password', 'b'], ['--creds', ''], ['--creds', ':x'], ['--command-timeout', '10'], ['--command-timeout', '1x'],
    ]) {
      assert.throws(() => parseFlags('experimental-image-proxy', argv), UsageError, argv.join(' '));
    }
  });
  it('parses Go durations', () => {
    assert.equal(parseGoDuration('t', '0'), 0);
    assert.equal(parseGoDuration('t', '500ms'), 500);
    assert.equal(parseGoDuration('t', '1h2m3.5s'), 3_723_500);
    assert.equal(parseGoDuration('t', '1.5m'), 90_000);
    assert.equal(parseGoDuration('t', '10us'), 1);
  });
});

describe('WWW-Authenticate and token answers', () => {
  it('parses bearer challenges with quoted values', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' } });
  });
  it('parses several challenges in one value and in several headers', () => {
    const list = parseChallenges(['Basic realm="x, y"', 'Bearer realm="r", error="invalid_token", Basic realm=z']);
    assert.deepEqual(list.map((c) => c.scheme), ['basic', 'bearer', 'basic']);
    assert.equal(list[0]!.params.realm, 'x, y');
    assert.equal(list[1]!.params.error, 'invalid_token');
    assert.equal(list[2]!.params.realm, 'z');
  });
  it('unescapes quoted-pairs and ignores garbage', () => {
    assert.equal(parseChallenges('Bearer realm="a\\"b"')[0]!.params.realm, 'a"b');
    assert.deepEqual(parseChallenges('=oops'), []);
    assert.deepEqual(parseChallenges(undefined), []);
  });
  it('reads token and access_token, with a minimum lifetime', () => {
    assert.deepEqual(parseTokenResponse('{"token":"t1","expires_in":300}'), { token: 't1', expiresInSeconds: 300 });
    assert.deepEqual(parseTokenResponse('{"access_token":"t2","expires_in":5}'), { token: 't2', expiresInSeconds: 60 });
    assert.throws(() => parseTokenResponse('{"expires_in":5}'), /without a token/);
    assert.throws(() => parseTokenResponse('<html>'), /not JSON/);
  });
});

describe('HTTP helpers', () => {
  it('reads Retry-After in seconds or as a date, capped', () => {
    assert.equal(retryAfterMs('2'), 2000);
    assert.equal(retryAfterMs('100000'), 60_000);
    assert.equal(retryAfterMs(undefined), undefined);
    assert.equal(retryAfterMs('soon'), undefined);
    const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
    const ms = retryAfterMs(inTenSeconds)!;
    assert.ok(ms > 8_000 && ms <= 10_000, String(ms));
    assert.equal(retryAfterMs(new Date(Date.now() - 10_000).toUTCString()), undefined);
  });

  it('chooses proxies as Go does', () => {
    const env = { HTTPS_PROXY: 'proxy.corp:3128', http_proxy: 'http://p2:80', NO_PROXY: 'internal.example,.svc,10.0.0.0/8,[fd00::1]:5000,registry.local:5000' };
    assert.equal(proxyFor(new URL('https://quay.io/v2/'), env), 'http://proxy.corp:3128');
    assert.equal(proxyFor(new URL('http://quay.io/v2/'), env), 'http://p2:80');
    assert.equal(proxyFor(new URL('https://quay.io/v2/'), { HTTP_PROXY: 'http://p2:80' }), undefined, 'https does not fall back to HTTP_PROXY');
    assert.equal(proxyFor(new URL('https://127.0.0.1:5000/v2/'), env), undefined, 'loopback is never proxied');
    assert.equal(proxyFor(new URL('https://[::1]:5000/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://localhost:5000/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://internal.example/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://a.internal.example/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://x.svc/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://svc/v2/'), env), 'http://proxy.corp:3128', '.svc matches subdomains only');
    assert.equal(proxyFor(new URL('https://10.1.2.3/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://11.1.2.3/v2/'), env), 'http://proxy.corp:3128');
    assert.equal(proxyFor(new URL('https://[fd00::1]:5000/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://[fd00::1]:6000/v2/'), env), 'http://proxy.corp:3128');
    assert.equal(proxyFor(new URL('https://registry.local:5000/v2/'), env), undefined);
    assert.equal(proxyFor(new URL('https://registry.local/v2/'), env), 'http://proxy.corp:3128');
    assert.equal(proxyFor(new URL('https://anything/v2/'), { HTTPS_PROXY: 'http://p', NO_PROXY: '*' }), undefined);
  });

  it('redacts user info and query values from logged URLs', () => {
    const line = redactUrl(new URL('https://user:secret@s3.example/blob?X-Amz-Signature=abc&X-Amz-Credential=def'));
    assert.ok(!line.includes('secret') && !line.includes('abc') && !line.includes('def'), line);
    assert.ok(line.startsWith('https://s3.example/blob?X-Amz-Signature='), line);
  });
});
