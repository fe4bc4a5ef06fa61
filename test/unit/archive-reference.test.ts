/**
 * Parsing oci-archive: and docker-archive: references: NAME:TAG normalisation as docker save's
 * RepoTags are matched, @N indexes, and the refusals (digests, uppercase, negative indexes).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../protocol/errors';
import { parseImageName } from '../../server/transports/all';
import { parseNormalizedNamed, referenceString, withDefaultTag } from '../../server/reference/docker-reference';

describe('docker-archive names', () => {
  const normalised: [string, string][] = [
    ['busybox', 'docker.io/library/busybox'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['index.docker.io/busybox:latest', 'docker.io/library/busybox:latest'],
    ['team/app:v1', 'docker.io/team/app:v1'],
    ['localhost/app', 'localhost/app'],
    ['example.com:5000/a/b_c__d-e:t.1', 'example.com:5000/a/b_c__d-e:t.1'],
    ['Example.COM/app:v', 'Example.COM/app:v'],
  ];
  for (const [input, want] of normalised) {
    it(`${input} -> ${want}`, () => assert.equal(referenceString(parseNormalizedNamed(input)), want));
  }

  it('adds :latest only to names with neither tag nor digest', () => {
    assert.equal(referenceString(withDefaultTag(parseNormalizedNamed('busybox'))), 'docker.io/library/busybox:latest');
    const d = `sha256:${'b'.repeat(64)}`;
    assert.equal(referenceString(withDefaultTag(parseNormalizedNamed(`busybox@${d}`))), `docker.io/library/busybox@${d}`);
  });

  const refused: [string, RegExp][] = [
    ['Busybox', /repository name must be lowercase/],
    ['a'.repeat(64), /cannot specify 64-byte hexadecimal strings/],
    ['bad name', /invalid reference format/],
    ['x:', /invalid reference format/],
    [`${'a'.repeat(250)}/b`, /must not be more than 255 characters/],
  ];
  for (const [input, pattern] of refused) {
    it(`refuses ${JSON.stringify(input.slice(0, 40))}`, () => assert.throws(() => parseNormalizedNamed(input), (err: unknown) => err instanceof InvalidArgumentError && pattern.test(err.message)));
  }
});

describe('archive references', () => {
  it('prints references back in TRANSPORT:FILE[:…] form', () => {
    assert.equal(parseImageName('docker-archive:/x/a.tar').toString(), 'docker-archive:/x/a.tar');
    assert.equal(parseImageName('docker-archive:/x/a.tar:busybox').toString(), 'docker-archive:/x/a.tar:docker.io/library/busybox:latest');
    assert.equal(parseImageName('docker-archive:/x/a.tar:@3').toString(), 'docker-archive:/x/a.tar:@3');
    assert.equal(parseImageName('oci-archive:/x/a.tar:v1.0').toString(), 'oci-archive:/x/a.tar:v1.0');
    assert.equal(parseImageName('oci-archive:/x/a.tar').toString(), 'oci-archive:/x/a.tar');
  });

  const bad: [string, RegExp][] = [
    ['docker-archive:', /isn't of the form <path>\[:<reference>\]/],
    ['docker-archive:a.tar:@-1', /Invalid source index @-1: must not be negative/],
    ['docker-archive:a.tar:@x', /Invalid source index @x/],
    [`docker-archive:a.tar:busybox@sha256:${'c'.repeat(64)}`, /reference does not include a tag/],
    [`docker-archive:a.tar:busybox:1@sha256:${'c'.repeat(64)}`, /doesn't support digest references/],
    ['oci-archive:', /empty path/],
    ['oci-archive:a.tar:bad ref', /Invalid image bad ref/],
  ];
  for (const [name, pattern] of bad) {
    it(`refuses ${name.slice(0, 50)}`, () => {
      assert.throws(() => parseImageName(name), (err: unknown) => err instanceof InvalidArgumentError && pattern.test(err.message));
    });
  }
});
