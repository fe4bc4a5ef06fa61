/**
 * Policy scopes: which scopes each transport section may name (as containers/image checks them
 * on loading; skopeo is asked the same), and which section applies to an image: identity,
 * then namespaces in order, then the transport's "", then the global default.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parsePolicy } from '../../server/policy/parse';
import { requirementsFor, scopeProblem } from '../../server/policy/scopes';
import type { Requirement } from '../../server/policy/types';
import { parseImageName } from '../../server/transports/all';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-scopes-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

function skopeoAcceptsScope(transport: string, scope: string): boolean {
  const file = path.join(tmp, `p${++n}.json`);
  writeFileSync(file, JSON.stringify({ default: [{ type: 'reject' }], transports: { [transport]: { [scope]: [{ type: 'reject' }] } } }));
  const r = spawnSync('skopeo', ['--policy', file, 'copy', '-q', `dir:${tmp}/none`, `dir:${tmp}/out`], { encoding: 'utf8' });
  return !r.stderr.includes('Error loading trust policy');
}

describe('scope validity per transport', () => {
  const table: [string, string, boolean][] = [
    ['dir', '', true], ['dir', '/srv/images', true], ['dir', '/', false], ['dir', 'relative', false], ['dir', '/a/', false],
    ['dir', '/a//b', false], ['dir', '/a/./b', false], ['dir', '/a/../b', false],
    ['oci', '/srv/layout', true], ['oci', '/srv/layout:tag', true], ['oci', '/', false], ['oci', 'x', false],
    ['oci-archive', '/srv/a.tar', true], ['oci-archive', 'a.tar', false],
    ['docker-archive', '', true], ['docker-archive', '/srv/a.tar', false],
    // containers/image does not check docker: scopes; a malformed one simply never matches.
    ['docker', 'docker.io/library/busybox', true], ['docker', '*.example.com', true], ['docker', 'Not A Name', true],
    ['docker', 'quay.io/ns/app@sha256:0123', true],
    // Nor the scopes of transports it does not know.
    ['no-such-transport', 'anything', true],
  ];
  for (const [transport, scope, valid] of table) {
    it(`${transport}: ${JSON.stringify(scope)} is ${valid ? 'valid' : 'refused'}`, () => {
      assert.equal(scopeProblem(transport, scope) === undefined, valid);
      assert.equal(skopeoAcceptsScope(transport, scope), valid, 'skopeo agrees');
    });
  }
});

/** A policy whose every scope names a requirement that says which scope it is. */
function labelled(transport: string, scopes: readonly string[]) {
  const section: Record<string, unknown> = {};
  for (const s of scopes) section[s] = [{ type: 'reject' }];
  return parsePolicy(JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }], transports: { [transport]: section } }));
}

function scopeUsed(policyScopes: readonly string[], transport: string, image: string): string {
  const policy = labelled(transport, policyScopes);
  return requirementsFor<readonly Requirement[]>(policy.transports, policy.default, parseImageName(image)).scope;
}

describe('scope lookup order', () => {
  const D = `sha256:${'a'.repeat(64)}`;
  const all = ['registry.example.com:5000/ns/app:v1', 'registry.example.com:5000/ns/app', 'registry.example.com:5000/ns', 'registry.example.com:5000', '*.example.com', '*.com', ''];
  it('docker: identity, repository, namespaces, host, wildcards, "", then default', () => {
    for (let i = 0; i < all.length; i++) {
      assert.equal(scopeUsed(all.slice(i), 'docker', 'docker://registry.example.com:5000/ns/app:v1'), `docker:${all[i]}`);
    }
    assert.equal(scopeUsed(['other.example.org'], 'docker', 'docker://registry.example.com:5000/ns/app:v1'), 'default');
    assert.equal(scopeUsed([''], 'dir', 'docker://registry.example.com:5000/ns/app:v1'), 'default', 'another transport\'s section never applies');
  });

  it('docker: a digest reference is its own identity; the tag scope does not match it', () => {
    assert.equal(scopeUsed([`quay.io/a/b@${D}`, 'quay.io/a/b:v1'], 'docker', `docker://quay.io/a/b@${D}`), `docker:quay.io/a/b@${D}`);
    assert.equal(scopeUsed(['quay.io/a/b:v1', 'quay.io'], 'docker', `docker://quay.io/a/b@${D}`), 'docker:quay.io');
  });

  it('docker: short names are normalised before lookup', () => {
    assert.equal(scopeUsed(['docker.io/library/busybox'], 'docker', 'docker://busybox'), 'docker:docker.io/library/busybox');
    assert.equal(scopeUsed(['busybox'], 'docker', 'docker://busybox'), 'default');
  });

  it('dir: the directory, its parents, then ""', () => {
    mkdirSync(path.join(tmp, 'imgs', 'one'), { recursive: true });
    const d = path.join(realpathSync(tmp), 'imgs', 'one');
    assert.equal(scopeUsed([d, path.dirname(d), ''], 'dir', `dir:${d}`), `dir:${d}`);
    assert.equal(scopeUsed([path.dirname(d), ''], 'dir', `dir:${d}`), `dir:${path.dirname(d)}`);
    assert.equal(scopeUsed([''], 'dir', `dir:${d}`), 'dir:');
    assert.equal(scopeUsed([path.join(tmp, 'other')], 'dir', `dir:${d}`), 'default');
  });
});
