/**
 * Policy scopes cross-checked with skopeo: for a reference and a candidate scope, a policy
 * that accepts everything except that scope of the transport (which it rejects) is handed to
 * `skopeo --policy P copy`. skopeo refuses the copy exactly when the scope is the reference's
 * identity or one of its namespaces, so the set of scopes skopeo honours must be the set
 * layerpipe computes, on the same symlinked, relative and decoy paths.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { parseImageName } from '../../server/transports/all';
import { skopeo, tempDir } from '../harness/archive-fixtures';
import { makeLayer, writeDirImage, writeOciImage } from '../harness/oci-builder';

let base: string;
let real: string;
let counter = 0;

/** skopeo's verdict: true when the policy rejects the image, false when the copy goes through. */
function skopeoRejects(policy: unknown, name: string, cwd: string): boolean {
  const file = path.join(base, `policy-${++counter}.json`);
  const out = path.join(base, `out-${counter}`);
  writeFileSync(file, JSON.stringify(policy));
  try {
    execFileSync('skopeo', ['--policy', file, 'copy', '-q', name, `dir:${out}`], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    return false;
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? err);
    if (stderr.includes('is rejected by policy')) return true;
    throw new Error(`skopeo failed for another reason: ${stderr}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function rejectOnly(transport: string, scope: string): unknown {
  return { default: [{ type: 'insecureAcceptAnything' }], transports: { [transport]: { [scope]: [{ type: 'reject' }] } } };
}

before(() => {
  base = tempDir('scope-skopeo');
  real = realpathSync(base);
  const images = path.join(base, 'store', 'images');
  mkdirSync(images, { recursive: true });
  const spec = { layers: [makeLayer({ 'a.txt': 'policy\n' })] };
  writeOciImage(path.join(images, 'layout'), spec, 'v1');
  writeDirImage(path.join(images, 'dirimg'), spec);
  skopeo(['copy', '-q', `oci:${images}/layout:v1`, `oci-archive:${images}/app.oci.tar:v1`]);
  skopeo(['copy', '-q', `oci:${images}/layout:v1`, `docker-archive:${images}/app.docker.tar:example.com/app:v1`]);
  symlinkSync(images, path.join(base, 'link'));
});

interface ScopeCase {
  readonly transport: string;
  /** The reference as the user writes it (without the transport), relative to `cwd`. */
  readonly reference: string;
  /** Working directory, relative to the temporary base. */
  readonly cwd: string;
  /** The path the reference names, in store/images (where the link points). */
  readonly target: string;
}

const CASES: ScopeCase[] = [
  { transport: 'oci', reference: 'LINK/layout:v1', cwd: '.', target: 'layout' },
  { transport: 'dir', reference: 'LINK/dirimg', cwd: '.', target: 'dirimg' },
  { transport: 'oci-archive', reference: 'LINK/app.oci.tar:v1', cwd: '.', target: 'app.oci.tar' },
  { transport: 'oci', reference: 'layout:v1', cwd: 'link', target: 'layout' },
  { transport: 'dir', reference: '../images/dirimg', cwd: 'link', target: 'dirimg' },
];

function withCwd<T>(dir: string, fn: () => T): T {
  const old = process.cwd();
  process.chdir(dir);
  try {
    return fn();
  } finally {
    process.chdir(old);
  }
}

describe('local policy scopes agree with skopeo', () => {
  for (const c of CASES) {
    it(`${c.transport}:${c.reference} (in ${c.cwd})`, () => {
      const cwd = path.join(base, c.cwd);
      const reference = c.reference.replace('LINK', path.join(base, 'link'));
      const ref = withCwd(cwd, () => parseImageName(`${c.transport}:${reference}`));
      const identity = withCwd(cwd, () => ref.policyIdentity());
      const ours = new Set([identity, ...ref.policyNamespaces()]);
      assert.equal(identity, path.join(real, 'store/images', c.target), 'built from the fixture\'s own layout');

      const decoys = [
        path.join(base, 'link', c.target), // the path as written, links unresolved
        `${identity}:v1`, // the REF is not part of an oci: scope
        path.join(identity, 'child'),
        path.join(path.dirname(identity), 'sibling'),
      ].filter((d) => !ours.has(d));
      for (const scope of [...ours, ...decoys]) {
        assert.equal(skopeoRejects(rejectOnly(c.transport, scope), `${c.transport}:${reference}`, cwd), ours.has(scope), `scope ${scope}`);
      }
    });
  }

  it('docker-archive: only the "" scope applies, and skopeo refuses any other', () => {
    const name = `docker-archive:${base}/link/app.docker.tar`;
    const ref = parseImageName(name);
    assert.equal(ref.policyIdentity(), '');
    assert.deepEqual(ref.policyNamespaces(), []);
    assert.equal(skopeoRejects(rejectOnly('docker-archive', ''), name, base), true);
    // skopeo's policy loader reports a scope the transport refuses as an unknown key.
    assert.throws(() => skopeoRejects(rejectOnly('docker-archive', path.join(real, 'store/images/app.docker.tar')), name, base), /invalid policy .*Unknown key .*app\.docker\.tar/);
  });

  it('"/" is refused as a scope by skopeo, so it can never be a namespace', () => {
    for (const transport of ['oci', 'dir']) {
      assert.throws(() => skopeoRejects(rejectOnly(transport, '/'), `${transport}:${base}/link/${transport === 'oci' ? 'layout:v1' : 'dirimg'}`, base), /invalid policy .*Unknown key \\+"\/\\+"/);
    }
  });
});
