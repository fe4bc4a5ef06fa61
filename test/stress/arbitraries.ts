/**
 * What the fuzzer sends, as fast-check arbitraries: calls of every method in protocol/methods.ts
 * with arguments of the right kind, the wrong kind, or the wrong count; hostile references for
 * every transport and digests of every malformed shape; packets that are not requests at all
 * (invalid JSON, non-objects, deep nesting, larger than 32 KiB), some carrying fds; and valid
 * sessions on the real fixtures in between.
 */
import fc from 'fast-check';
import { MAX_MESSAGE_SIZE, METHODS, type ArgKind, type MethodName } from '../../protocol/methods';
import type { Fixtures } from './fixtures';

/** An id known only while the case runs: the last image opened, or the last pipe handed out. */
export class Sym {
  constructor(readonly name: 'lastImage' | 'lastPipe') {}
  [fc.toStringMethod](): string {
    return `<${this.name}>`;
  }
}

export type Action =
  | { readonly kind: 'call'; readonly method: string; readonly args: readonly unknown[] }
  | { readonly kind: 'raw'; readonly data: Uint8Array; readonly fds: number }
  | { readonly kind: 'burst'; readonly calls: readonly { method: string; args: readonly unknown[] }[] }
  | { readonly kind: 'session'; readonly image: number; readonly layers: readonly number[]; readonly raw: boolean }
  | { readonly kind: 'shutdown' };

const hex = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });

/** Strings meant to break things: NUL bytes, lone surrogates, control characters, sizes near the limits. */
export function hostileString(): fc.Arbitrary<string> {
  const huge = fc.tuple(fc.constantFrom('x', '"', '\\', '\u0000', '\n', 'é', '\u{1F600}', '\uFFFD', '\u2028', '%s', '${x}'), fc.integer({ min: 1000, max: 20_000 }))
    .map(([c, n]) => c.repeat(Math.floor(n / Math.max(1, Buffer.byteLength(JSON.stringify(c)) - 2))));
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    { weight: 2, arbitrary: fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([a, b]) => `${a}\u0000${b}`) },
    { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom('a', 'b', '0', '.', '-', '_', ':', '/', '@', '!'), maxLength: 40 }) },
    { weight: 1, arbitrary: huge },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', '\ud800', '\udfff', '__proto__', 'constructor', '\u001b[31m', 'a\r\nb', '    at x (y.js:1:1)') },
  );
}

/** Digests of every shape: real ones, well-formed unknown ones, and every way to be malformed. */
export function digestArb(fx: Fixtures): fc.Arbitrary<string> {
  const real = fc.constantFrom(...fx.images.flatMap((i) => i.layers.map((l) => l.digest)));
  return fc.oneof(
    { weight: 4, arbitrary: real },
    { weight: 3, arbitrary: hex(64).map((h) => `sha256:${h}`) },
    { weight: 1, arbitrary: hex(128).map((h) => `sha512:${h}`) },
    { weight: 1, arbitrary: hex(96).map((h) => `sha384:${h}`) },
    {
      weight: 4,
      arbitrary: fc.tuple(real, fc.constantFrom(
        (d: string) => d.toUpperCase(), (d: string) => d.slice(0, -1), (d: string) => `${d}0`, (d: string) => `${d}\n`, (d: string) => `${d}\u0000`,
        (d: string) => ` ${d}`, (d: string) => d.replace('sha256:', 'sha256::'), (d: string) => d.replace('sha256:', 'SHA256:'),
        (d: string) => d.replace('sha256:', 'md5:'), (d: string) => d.replace('sha256:', ':'), (d: string) => d.replace('sha256:', ''),
        (d: string) => d.replace(/[0-9]/g, (c) => String.fromCharCode(0xff10 + Number(c))), (d: string) => `${d}/../../../etc/passwd`,
        (d: string) => d.replace('sha256:', 'sha256+b64:'), (d: string) => d.slice(0, 7) + '../'.repeat(21) + 'x',
      )).map(([d, spoil]) => spoil(d)),
    },
    { weight: 2, arbitrary: fc.constantFrom('', 'sha256', 'sha256:', ':', 'sha256:../../../../etc/passwd', `sha256:${'g'.repeat(64)}`, 'sha256:' + '0'.repeat(64)) },
    { weight: 2, arbitrary: hostileString() },
    { weight: 1, arbitrary: fc.integer({ min: 8000, max: 24_000 }).map((n) => `sha256:${'a'.repeat(n)}`) },
  );
}

/** Image references: real fixtures, spoiled ones, and hostile paths for every transport. */
export function referenceArb(fx: Fixtures): fc.Arbitrary<string> {
  const paths = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...fx.images.map((i) => i.file)) },
    { weight: 3, arbitrary: fc.constantFrom('', '.', '..', '/', 'x', '../../../../etc/passwd', '/etc/passwd', '/nonexistent/x', '/dev/null', '/dev/zero', '/dev/urandom', '/proc/self/fd/0', '/proc/self/mem', '/proc/self/environ', fx.emptyFile, fx.plainDir, fx.dir, `${fx.dir}/`) },
    // Rare: opening a FIFO blocks until a writer comes; the fuzzer checks whether the proxy does.
    { weight: 1, arbitrary: fc.constant(fx.fifo) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...fx.images.map((i) => i.file)), hostileString()).map(([p, s]) => `${p}${s}`) },
    { weight: 1, arbitrary: fc.integer({ min: 256, max: 12_000 }).map((n) => `/${'a'.repeat(n)}`) },
    { weight: 1, arbitrary: fc.integer({ min: 50, max: 3000 }).map((n) => 'd/'.repeat(n)) },
    { weight: 2, arbitrary: hostileString() },
  );
  const suffixes = fc.oneof(
    { weight: 3, arbitrary: fc.constant('') },
    { weight: 2, arbitrary: fc.constantFrom(':latest', ':v1', ':example.com/stress/app:v1', ':@0', ':@1', ':@-1', ':@99999999999999999999', ':@0x1', ':a:b:c', ':', '::', ':UPPER:case', ':@') },
    { weight: 3, arbitrary: hostileString().map((s) => `:${s}`) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('', 'a@', 'a:b@'), digestArb(fx)).map(([p, d]) => `:${p}${d}`) },
  );
  const local = fc.tuple(fc.constantFrom('oci:', 'dir:', 'oci-archive:', 'docker-archive:'), paths, suffixes).map(([t, p, s]) => `${t}${p}${s}`);
  // Registries only on 127.0.0.1/localhost ports that refuse: never a network.
  const host = fc.constantFrom(`127.0.0.1:${fx.refusedPort}`, `localhost:${fx.refusedPort}`, `[::1]:${fx.refusedPort}`);
  const docker = fc.oneof(
    fc.tuple(host, fc.constantFrom('app', 'a/b/c', 'UPPER', 'x'.repeat(300), '../x', 'a//b', ''), fc.constantFrom('', ':latest', ':', '@', ':t@sha256:' + 'a'.repeat(64)))
      .map(([h, r, s]) => `docker://${h}/${r}${s}`),
    fc.tuple(host, hostileString()).map(([h, s]) => `docker://${h}/${s}`),
    fc.tuple(host, digestArb(fx)).map(([h, d]) => `docker://${h}/app@${d}`),
    fc.constantFrom('docker:', 'docker:/', 'docker:///', `docker://127.0.0.1:${fx.refusedPort}`),
  );
  const otherTransports = fc.tuple(
    fc.constantFrom('', ':', 'OCI:', 'oci', 'containers-storage:', 'docker-daemon:', 'atomic:', 'ostree:', 'sif:', 'tarball:', 'oci-archive', '\u0000:', 'oci :'),
    hostileString(),
  ).map(([t, s]) => `${t}${s}`);
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...fx.images.map((i) => i.ref)) },
    { weight: 8, arbitrary: local },
    { weight: 2, arbitrary: docker },
    { weight: 2, arbitrary: otherTransports },
  );
}

const uintArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<unknown>(new Sym('lastImage'), new Sym('lastPipe')) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom(0xffffffff, 2 ** 32, Number.MAX_SAFE_INTEGER, 2 ** 31) },
  { weight: 1, arbitrary: fc.maxSafeNat() },
);

/** A value of any JSON type, including the near misses of a uint. */
const wrongTypeArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, -1, -0.5, 1.5, 2 ** 53, 2 ** 64, 1e300, -1e300, 5e-324, '1', '', [], {}, [1], { a: 1 }),
  fc.double(),
  fc.integer({ min: -(2 ** 31), max: -1 }),
  fc.jsonValue({ maxDepth: 3 }),
);

function argArb(fx: Fixtures, kind: ArgKind, name: string): fc.Arbitrary<unknown> {
  if (kind === 'uint') return uintArb;
  if (name === 'digest') return digestArb(fx);
  return referenceArb(fx);
}

/** A call of a real method: right arguments, one of the wrong type, or any list at all. */
export function methodCallArb(fx: Fixtures): fc.Arbitrary<{ method: string; args: unknown[] }> {
  const names = Object.keys(METHODS) as MethodName[];
  return fc.constantFrom(...names).chain((name) => {
    const spec = METHODS[name];
    const right = fc.tuple(...spec.args.map((k, i) => argArb(fx, k, spec.argNames[i]!)));
    const oneWrong = spec.args.length === 0 ? right : fc.tuple(right, fc.nat(spec.args.length - 1), wrongTypeArb).map(([args, i, w]) => {
      const copy = [...args];
      copy[i] = w;
      return copy;
    });
    const anyList = fc.array(fc.oneof(uintArb, wrongTypeArb, hostileString()), { maxLength: 5 });
    return fc.oneof({ weight: 6, arbitrary: right as fc.Arbitrary<unknown[]> }, { weight: 2, arbitrary: oneWrong as fc.Arbitrary<unknown[]> }, { weight: 1, arbitrary: anyList })
      // A well-formed Shutdown ends the proxy: that is the 'shutdown' action's business.
      .map((args) => ({ method: name, args: name === 'Shutdown' && args.length === 0 ? [0] : args }));
  });
}

function unknownMethodArb(): fc.Arbitrary<{ method: string; args: unknown[] }> {
  const name = fc.oneof(hostileString(), fc.constantFrom('initialize', 'GETBLOB', 'Get Blob', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype'));
  return fc.tuple(name, fc.array(fc.oneof(uintArb, hostileString()), { maxLength: 3 })).map(([method, args]) => ({ method, args }));
}

const text = (s: string): Uint8Array => Buffer.from(s);

/** Packets that are not well-formed requests. */
export function rawPacketArb(): fc.Arbitrary<Uint8Array> {
  const request = '{"method":"Initialize","args":[]}';
  return fc.oneof(
    fc.uint8Array({ maxLength: 256 }),
    fc.string({ unit: 'binary', maxLength: 200 }).map(text),
    fc.nat(request.length - 1).map((n) => text(request.slice(0, n))),
    fc.jsonValue({ maxDepth: 4 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => text(JSON.stringify(v) ?? 'null')),
    fc.jsonValue({ maxDepth: 3 }).map((v) => text(JSON.stringify({ method: v, args: v }))),
    fc.constantFrom(
      '[]', 'null', '1', '"Initialize"', 'true', `[${request}]`, '{}', '{"method":1}', '{"args":{}}', '{"method":"Initialize","args":{}}',
      '{"method":"Initialize","args":"x"}', '{"method":"Initialize","args":null,"extra":1}', '{"method":"Initialize"}',
      '{"method":"GetBlob","method":"Initialize","args":[]}', '{"__proto__":{"method":"Initialize"},"args":[]}',
      '{"method":"Initialize","args":[]} trailing', `${request}\u0000`, '\ufeff{"method":"Initialize","args":[]}', '{"method":"\\ud800","args":[]}',
      '{"method":"OpenImage","args":[1e999]}', '{"method":"CloseImage","args":[-0]}', '{"method":"CloseImage","args":[1.0]}', '{"method":"CloseImage","args":[1e0]}',
    ).map(text),
    // Nesting deep enough to break a recursive parser or printer, inside the 32 KiB limit.
    fc.tuple(fc.integer({ min: 100, max: 16_000 }), fc.constantFrom('[', '{"a":')).map(([depth, open]) => {
      const d = Math.min(depth, Math.floor((MAX_MESSAGE_SIZE - 64) / (open.length + 1)));
      const close = open === '[' ? ']' : '}';
      return text(`{"method":"GetBlob","args":${open.repeat(d)}1${close.repeat(d)}}`);
    }),
    fc.integer({ min: 100, max: 16_000 }).map((d) => text('['.repeat(d) + ']'.repeat(d))),
    // Larger than MAX_MESSAGE_SIZE: a valid request padded with spaces must not be read as valid.
    fc.tuple(fc.constantFrom(MAX_MESSAGE_SIZE - 1, MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE + 1, 65_536, 150_000), fc.constantFrom(' ', 'x'))
      .map(([size, pad]) => text(pad === ' ' ? request + ' '.repeat(size - request.length) : `{"method":"${'x'.repeat(size - 24)}","args":[]}`)),
  );
}

export function actionArb(fx: Fixtures): fc.Arbitrary<Action> {
  const call = fc.oneof({ weight: 5, arbitrary: methodCallArb(fx) }, { weight: 1, arbitrary: unknownMethodArb() });
  return fc.oneof(
    { weight: 100, arbitrary: call.map((c): Action => ({ kind: 'call', ...c })) },
    { weight: 30, arbitrary: fc.tuple(rawPacketArb(), fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) })).map(([data, fds]): Action => ({ kind: 'raw', data, fds })) },
    { weight: 20, arbitrary: fc.array(call, { minLength: 2, maxLength: 12 }).map((calls): Action => ({ kind: 'burst', calls })) },
    {
      weight: 20,
      arbitrary: fc.record({ image: fc.nat(fx.images.length - 1), layers: fc.array(fc.nat(3), { minLength: 1, maxLength: 3 }), raw: fc.boolean() })
        .map((s): Action => ({ kind: 'session', ...s })),
    },
    // Rare: the proxy must exit 0 at once, and be started again (with its warm-up) for the next case.
    { weight: 1, arbitrary: fc.constant<Action>({ kind: 'shutdown' }) },
  );
}

export function caseArb(fx: Fixtures): fc.Arbitrary<Action[]> {
  return fc.array(actionArb(fx), { minLength: 1, maxLength: 6 });
}
