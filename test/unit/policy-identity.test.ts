/**
 * signedIdentity: the identity a signature claims against the image's reference, for every
 * kind containers-policy.json(5) defines (the real-signature comparison with skopeo is in
 * test/e2e/policy-signing.test.ts; this table covers the corners).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { identityMatches } from '../../server/policy/identity';
import type { IdentityMatch } from '../../server/policy/types';
import { parseDockerReference } from '../../server/reference/docker-reference';

const D = `sha256:${'b'.repeat(64)}`;
const E = `sha256:${'c'.repeat(64)}`;

// [match, image reference (docker://, without "//"; undefined = none), signed identity, accepted]
const table: [IdentityMatch, string | undefined, string, boolean][] = [
  [{ type: 'matchExact' }, 'quay.io/a/b:v1', 'quay.io/a/b:v1', true],
  [{ type: 'matchExact' }, 'quay.io/a/b:v1', 'quay.io/a/b:v2', false],
  [{ type: 'matchExact' }, 'quay.io/a/b:v1', 'quay.io/a/b', false],
  [{ type: 'matchExact' }, 'busybox', 'docker.io/library/busybox:latest', true],
  [{ type: 'matchExact' }, `quay.io/a/b@${D}`, 'quay.io/a/b:v1', false],
  [{ type: 'matchExact' }, `quay.io/a/b@${D}`, `quay.io/a/b@${D}`, true],
  [{ type: 'matchExact' }, undefined, 'quay.io/a/b:v1', false],
  [{ type: 'matchRepoDigestOrExact' }, 'quay.io/a/b:v1', 'quay.io/a/b:v1', true],
  [{ type: 'matchRepoDigestOrExact' }, 'quay.io/a/b:v1', 'quay.io/a/b:v2', false],
  [{ type: 'matchRepoDigestOrExact' }, `quay.io/a/b@${D}`, 'quay.io/a/b:v2', true],
  [{ type: 'matchRepoDigestOrExact' }, `quay.io/a/b@${D}`, `quay.io/a/b@${E}`, true],
  [{ type: 'matchRepoDigestOrExact' }, `quay.io/a/b@${D}`, 'quay.io/a/c:v2', false],
  [{ type: 'matchRepoDigestOrExact' }, `quay.io/a/b@${D}`, 'quay.io/a/b', false],
  [{ type: 'matchRepoDigestOrExact' }, undefined, 'quay.io/a/b:v1', false],
  [{ type: 'matchRepository' }, 'quay.io/a/b:v1', 'quay.io/a/b:v9', true],
  [{ type: 'matchRepository' }, 'quay.io/a/b:v1', 'quay.io/a/b', true],
  [{ type: 'matchRepository' }, 'quay.io/a/b:v1', 'quay.io/a/bc:v1', false],
  [{ type: 'matchRepository' }, 'quay.io/a/b:v1', 'not a reference', false],
  [{ type: 'exactReference', dockerReference: 'quay.io/a/b:v1' }, undefined, 'quay.io/a/b:v1', true],
  [{ type: 'exactReference', dockerReference: 'quay.io/a/b:v1' }, 'other.io/x:y', 'quay.io/a/b:v1', true],
  [{ type: 'exactReference', dockerReference: 'quay.io/a/b:v1' }, undefined, 'quay.io/a/b:v2', false],
  [{ type: 'exactReference', dockerReference: 'busybox:latest' }, undefined, 'docker.io/library/busybox:latest', true],
  [{ type: 'exactRepository', dockerRepository: 'quay.io/a/b' }, undefined, 'quay.io/a/b:v7', true],
  [{ type: 'exactRepository', dockerRepository: 'quay.io/a/b' }, undefined, 'quay.io/a/c:v7', false],
  // remapIdentity: the image's name with prefix replaced, then matchRepoDigestOrExact.
  [{ type: 'remapIdentity', prefix: 'mirror.example.com/up', signedPrefix: 'quay.io/a' }, 'mirror.example.com/up/b:v1', 'quay.io/a/b:v1', true],
  [{ type: 'remapIdentity', prefix: 'mirror.example.com/up', signedPrefix: 'quay.io/a' }, 'mirror.example.com/up/b:v1', 'mirror.example.com/up/b:v1', false],
  [{ type: 'remapIdentity', prefix: 'mirror.example.com/up', signedPrefix: 'quay.io/a' }, 'mirror.example.com/upper/b:v1', 'mirror.example.com/upper/b:v1', true],
  [{ type: 'remapIdentity', prefix: 'mirror.example.com/up', signedPrefix: 'quay.io/a' }, 'mirror.example.com/upper/b:v1', 'quay.io/aper/b:v1', false],
  [{ type: 'remapIdentity', prefix: 'mirror.example.com', signedPrefix: 'docker.io' }, 'mirror.example.com/library/busybox:v1', 'docker.io/library/busybox:v1', true],
  // The result must be a canonical name: docker.io/busybox is not (library/ is missing).
  [{ type: 'remapIdentity', prefix: 'mirror.example.com', signedPrefix: 'docker.io' }, 'mirror.example.com/busybox:v1', 'docker.io/library/busybox:v1', false],
  [{ type: 'remapIdentity', prefix: 'mirror.example.com/up', signedPrefix: 'quay.io/a' }, `mirror.example.com/up/b@${D}`, 'quay.io/a/b:any', true],
];

describe('signedIdentity', () => {
  for (const [match, image, signed, accepted] of table) {
    it(`${match.type}${'prefix' in match ? ` ${match.prefix}->${match.signedPrefix}` : ''}: image ${image ?? '(none)'}, signed ${signed}: ${accepted ? 'accepted' : 'refused'}`, () => {
      assert.equal(identityMatches(match, image === undefined ? undefined : parseDockerReference(image), signed), accepted);
    });
  }
});
