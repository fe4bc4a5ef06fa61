/**
 * The Go-compatible OCI config serialiser (server/image/config.ts), checked against the rules
 * of Go's encoding/json and the image-spec structs: members in struct order, omitempty members
 * left out when empty, map keys sorted by their UTF-8 bytes, strings escaped as Go 1.19 does,
 * times written back as time.Time.MarshalJSON does. image-convert.test.ts compares the same
 * serialiser byte for byte with what skopeo writes.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { UnsupportedError } from '../../protocol/errors';
import { goJsonString, ociConfigBytes, ociRuntimeConfigBytes } from '../../server/image/config';

const cfg = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const full = (v: unknown): string => ociConfigBytes(cfg(v)).toString('utf8');
const runtime = (v: unknown): string => ociRuntimeConfigBytes(cfg(v)).toString('utf8');
const minimal = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } };

describe('goJsonString', () => {
  const cases: [string, string, string][] = [
    ['plain text', 'abc', '"abc"'],
    ['HTML-sensitive characters', '<a href="x">&</a>', '"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e"'],
    ['backslash and quote', 'a\\"b', '"a\\\\\\"b"'],
    ['\\n \\r \\t keep their short escapes', '\n\r\t', '"\\n\\r\\t"'],
    ['\\b and \\f as \\u00XX (Go before 1.22)', '\b\f', '"\\u0008\\u000c"'],
    ['other control characters in lower-case hex', '\u0001\u001f\u0000', '"\\u0001\\u001f\\u0000"'],
    ['DEL stays raw', '\u007f', '"\u007f"'],
    ['the line separators', '\u2028\u2029', '"\\u2028\\u2029"'],
    ['non-ASCII stays raw', 'é漢', '"é漢"'],
    ['a surrogate pair stays raw', '\u{1f600}', '"\u{1f600}"'],
    ['a lone surrogate becomes U+FFFD, as Go decodes it', 'a\ud800b\udc00', '"a\ufffdb\ufffd"'],
  ];
  for (const [name, input, want] of cases) it(name, () => assert.equal(goJsonString(input), want));

  it('writes what JSON.parse reads back (lone surrogates aside)', () => {
    const s = '<>&\b\f\u0001\n"\\\u2028 é \u{1f600}';
    assert.equal(JSON.parse(goJsonString(s)), s);
  });
});

describe('ociConfigBytes', () => {
  it('writes members in the image-spec order, whatever the stored order', () => {
    const stored = {
      history: [{ empty_layer: true, comment: 'c', author: 'h', created_by: 'b', created: '2024-01-02T03:04:05Z' }],
      rootfs: { diff_ids: ['sha256:1'], type: 'layers' },
      config: {
        ArgsEscaped: true, StopSignal: 'SIGTERM', Labels: { l: 'v' }, WorkingDir: '/w', Volumes: { '/v': {} }, Cmd: ['c'],
        Entrypoint: ['e'], Env: ['E=1'], ExposedPorts: { '80/tcp': {} }, User: 'u',
      },
      'os.features': ['f'], 'os.version': '1', os: 'linux', variant: 'v7', architecture: 'arm', author: 'a', created: '2024-01-02T03:04:05Z',
    };
    assert.equal(full(stored),
      '{"created":"2024-01-02T03:04:05Z","author":"a","architecture":"arm","variant":"v7","os":"linux","os.version":"1","os.features":["f"],' +
      '"config":{"User":"u","ExposedPorts":{"80/tcp":{}},"Env":["E=1"],"Entrypoint":["e"],"Cmd":["c"],"Volumes":{"/v":{}},"WorkingDir":"/w",' +
      '"Labels":{"l":"v"},"StopSignal":"SIGTERM","ArgsEscaped":true},' +
      '"rootfs":{"type":"layers","diff_ids":["sha256:1"]},' +
      '"history":[{"created":"2024-01-02T03:04:05Z","created_by":"b","author":"h","comment":"c","empty_layer":true}]}');
  });

  it('leaves out empty omitempty members but always writes architecture, os, config and rootfs', () => {
    const stored = {
      created: null, author: '', variant: '', 'os.version': '', 'os.features': [], history: [],
      config: { User: '', Env: [], Cmd: null, ExposedPorts: {}, Labels: {}, ArgsEscaped: false },
      rootfs: {},
    };
    assert.equal(full(stored), '{"architecture":"","os":"","config":{},"rootfs":{"type":"","diff_ids":null}}');
  });

  it('drops members the OCI structs do not have (Docker-only ones)', () => {
    const stored = {
      ...minimal, container: 'abc', docker_version: '20.10', container_config: { Hostname: 'h' }, id: 'x',
      config: { Hostname: 'h', Healthcheck: { Test: ['NONE'] }, Shell: ['/bin/sh'], OnBuild: [], Env: ['A=1'] },
    };
    assert.equal(full(stored), '{"architecture":"amd64","os":"linux","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}}');
  });

  it('matches keys case-insensitively, the last match winning, as Go decodes', () => {
    const stored = { ...minimal, ARCHITECTURE: 'arm', Architecture: 'riscv64', CONFIG: { env: ['A=1'] } };
    assert.equal(full(stored), '{"architecture":"riscv64","os":"linux","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}}');
  });

  it('sorts map keys by UTF-8 bytes, not UTF-16 units', () => {
    // U+FF61 is EF BD A1 in UTF-8 and sorts before U+10000 (F0 90 80 80), the reverse of UTF-16 order.
    const stored = { ...minimal, config: { Labels: { '\u{10000}': '1', '\uff61': '2', b: '3', B: '4', é: '5' } } };
    assert.equal(runtime(stored), `{"Labels":{"B":"4","b":"3","é":"5","\uff61":"2","\u{10000}":"1"}}`);
  });

  it('reads null set members and null label values as Go does', () => {
    const stored = { ...minimal, config: { ExposedPorts: { '443/tcp': null, '80/tcp': {} }, Labels: { a: null }, Env: [null, 'B=2'] } };
    assert.equal(runtime(stored), '{"ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Env":["","B=2"],"Labels":{"a":""}}');
  });

  it('writes a null history entry as an empty object', () => {
    assert.equal(full({ ...minimal, history: [null, { created_by: 'x' }] }),
      '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]},"history":[{},{"created_by":"x"}]}');
  });

  const times: [string, string][] = [
    ['2024-05-01T10:20:30Z', '2024-05-01T10:20:30Z'],
    ['2024-05-01T10:20:30.120000000Z', '2024-05-01T10:20:30.12Z'],
    ['2024-05-01T10:20:30.000Z', '2024-05-01T10:20:30Z'],
    ['2024-05-01T10:20:30.1234567891Z', '2024-05-01T10:20:30.123456789Z'],
    ['2024-05-01T10:20:30+02:00', '2024-05-01T10:20:30+02:00'],
    ['2024-05-01T10:20:30-00:00', '2024-05-01T10:20:30Z'],
    ['2024-05-01T10:20:30+00:00', '2024-05-01T10:20:30Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00Z'],
  ];
  for (const [input, want] of times) {
    it(`writes the time ${input} back as ${want}`, () => {
      assert.equal(full({ ...minimal, created: input }), `{"created":"${want}","architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`);
    });
  }

  const badTimes = [
    '2024-05-01t10:20:30Z', '2024-05-01T10:20:30z', '2024-05-01 10:20:30Z', '2024-05-01T10:20:30', '2024-05-01T10:20:30.Z',
    '2024-13-01T10:20:30Z', '2023-02-29T10:20:30Z', '2024-04-31T10:20:30Z', '2024-05-01T24:00:00Z', '2024-05-01T10:60:00Z',
    '2024-05-01T10:20:60Z', '24-05-01T10:20:30Z',
  ];
  for (const t of badTimes) {
    it(`refuses the time ${t}`, () => {
      assert.throws(() => full({ ...minimal, history: [{ created: t }] }), (err: Error) => err instanceof UnsupportedError && /history\[0\]\.created: cannot parse/.test(err.message));
    });
  }

  const badTypes: [string, unknown, RegExp][] = [
    ['a number for a string', { ...minimal, architecture: 5 }, /cannot read number into architecture \(string\)/],
    ['a string for a list', { ...minimal, config: { Env: 'A=1' } }, /cannot read string into config\.Env/],
    ['a number in a list', { ...minimal, config: { Cmd: ['a', 1] } }, /config\.Cmd\[1\]/],
    ['a string for a set member', { ...minimal, config: { Volumes: { '/v': 'x' } } }, /config\.Volumes\.\/v/],
    ['an array for a struct', { ...minimal, rootfs: [] }, /cannot read array into rootfs/],
    ['a number for a bool', { ...minimal, config: { ArgsEscaped: 1 } }, /config\.ArgsEscaped \(bool\)/],
  ];
  for (const [name, stored, pattern] of badTypes) {
    it(`refuses ${name}, as Go's decoder does`, () => {
      assert.throws(() => full(stored), (err: Error) => err instanceof UnsupportedError && pattern.test(err.message));
    });
  }

  it('refuses bytes that are no JSON object', () => {
    assert.throws(() => ociConfigBytes(Buffer.from('[]')), /not a JSON object/);
    assert.throws(() => ociConfigBytes(Buffer.from('{')), UnsupportedError);
  });
});

describe('ociRuntimeConfigBytes', () => {
  it('is the config member alone', () => {
    assert.equal(runtime({ ...minimal, config: { Cmd: ['sh'], Labels: { x: '<y>' } } }), '{"Cmd":["sh"],"Labels":{"x":"\\u003cy\\u003e"}}');
  });
  it('is {} when the config has no runtime part', () => {
    assert.equal(runtime(minimal), '{}');
    assert.equal(runtime({ ...minimal, config: null }), '{}');
  });
  it('is exactly the text the full config holds for its config member', () => {
    const stored = { ...minimal, config: { Env: ['A=<1>'], ExposedPorts: { '1/udp': {} }, User: 'me' } };
    assert.ok(full(stored).includes(`"config":${runtime(stored)},"rootfs"`));
  });
});
