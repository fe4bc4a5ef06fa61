/**
 * Hostile docker references: long runs that make a backtracking regex engine take
 * exponential (or quadratic) time on the reference grammar's nested patterns. Each must be
 * refused, with a clear error, in well under 100 ms, wherever the grammar is used.
 */
import { strict as assert } from 'node:assert';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { InvalidArgumentError, InvalidConfigError, MAX_QUOTED_INPUT } from '../../protocol/errors';
import { parseRegistriesConfFile } from '../../server/config/registries-conf-file';
import { parseDockerReference, parseNormalizedNamed } from '../../server/reference/docker-reference';
import { aliasNameProblem, aliasValueProblem } from '../../server/reference/short-names';
import { parseImageName } from '../../server/transports/all';

const LIMIT_MS = 100;
const N = 5000;
const a = 'a'.repeat(N);
const HEX = '0123456789abcdef'.repeat(4);

/** Runs fn, which must throw; returns the error and how long it took. */
function timedRefusal(fn: () => unknown): { err: unknown; ms: number } {
  const start = performance.now();
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - start;
  assert.ok(err !== undefined, 'was accepted');
  return { err, ms };
}

// [what, input, what the docker:// error must say]
const hostile: [string, string, RegExp][] = [
  ['name', `${a}!`, /malformed repository name/],
  ['name with dashes', `${'a-'.repeat(N)}!`, /malformed repository name/],
  ['name with double dashes', `${'a--'.repeat(N)}-!`, /malformed repository name/],
  ['name with underscores', `${'a_'.repeat(N)}_`, /malformed repository name/],
  ['name with dots', `${'a.'.repeat(N)}.a`, /malformed repository name/],
  ['deep path', `q.io/${'a/'.repeat(N)}!`, /malformed repository name/],
  ['domain', `${a}!.com/x`, /malformed registry/],
  ['domain with dashes', `${'a-'.repeat(N)}!.com/x`, /malformed registry/],
  ['domain labels', `${'a.'.repeat(N)}!/x`, /malformed registry/],
  ['port', `q.io:${'1'.repeat(N)}x/y`, /malformed registry/],
  ['IPv6 literal', `[${':'.repeat(N)}!]/x`, /malformed registry/],
  ['tag', `x:${a}!`, /malformed tag/],
  ['long tag', `x:${a}`, /malformed tag/],
  ['digest with a newline', `x@sha256:${HEX}\n`, /malformed digest/],
  ['digest algorithm', `x@${'a+'.repeat(N)}:${HEX}`, /malformed digest/],
  ['digest hex', `x@sha256:${'0'.repeat(N)}!`, /malformed digest/],
  ['long valid name', `q.io/${'a/'.repeat(N)}a`, /255 characters/],
  ['uppercase', `${a}A`, /lowercase/],
];

describe('hostile references are refused in linear time', () => {
  for (const [what, input, why] of hostile) {
    it(`docker:// ${what}`, () => {
      const { err, ms } = timedRefusal(() => parseDockerReference(input));
      assert.ok(err instanceof InvalidArgumentError && why.test(err.message), String(err));
      assert.ok(err.message.length < 2 * MAX_QUOTED_INPUT + 200, 'the message quotes bounded parts of the input');
      assert.ok(ms < LIMIT_MS, `${ms.toFixed(1)} ms`);
    });
    it(`docker-archive names: ${what}`, () => {
      const { err, ms } = timedRefusal(() => parseNormalizedNamed(input));
      assert.ok(err instanceof InvalidArgumentError && /invalid reference format|255 characters|lowercase/.test(err.message), String(err));
      assert.ok(ms < LIMIT_MS, `${ms.toFixed(1)} ms`);
    });
  }

  it('docker-archive: the reference that took 18 s with the old grammar', () => {
    parseImageName('docker-archive:/nonexistent:warm'); // Transports load on first use; not timed.
    for (const n of [15, 30, N]) {
      const { err, ms } = timedRefusal(() => parseImageName(`docker-archive:/nonexistent:${'a'.repeat(n)}!`));
      assert.ok(err instanceof InvalidArgumentError, String(err));
      assert.equal(err.message, 'docker-archive parsing reference: invalid reference format');
      assert.ok(ms < LIMIT_MS, `${n}: ${ms.toFixed(1)} ms`);
    }
  });

  it('docker:// through parseImageName', () => {
    parseImageName('docker://warm');
    const { err, ms } = timedRefusal(() => parseImageName(`docker://${'a-'.repeat(N)}!`));
    assert.ok(err instanceof InvalidArgumentError, String(err));
    assert.ok(ms < LIMIT_MS, `${ms.toFixed(1)} ms`);
  });

  it('registries.conf aliases and search registries', () => {
    for (const [name, value] of [[`${a}!`, 'quay.io/x'], ['x', `quay.io/${'a-'.repeat(N)}!`], ['x', `${'a.'.repeat(N)}!/x`]] as const) {
      const start = performance.now();
      assert.ok(aliasNameProblem(name) !== undefined || aliasValueProblem(value) !== undefined);
      assert.ok(performance.now() - start < LIMIT_MS);
    }
    for (const text of [
      `[aliases]\n"${'a-'.repeat(N)}!" = "quay.io/x"`,
      `unqualified-search-registries = ["${'a-'.repeat(N)}!"]`,
      `[[registry]]\nlocation = "${'a/'.repeat(N)}b"\n[[registry.mirror]]\nlocation = "${'/x'.repeat(N)}"`,
    ]) {
      const start = performance.now();
      try {
        parseRegistriesConfFile(text, 'hostile.conf', { requireV2: false });
      } catch (err) {
        assert.ok(err instanceof InvalidConfigError, String(err));
      }
      assert.ok(performance.now() - start < LIMIT_MS * 2, 'TOML parsing included');
    }
  });
});
