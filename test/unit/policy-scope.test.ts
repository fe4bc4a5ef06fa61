/**
 * Policy scopes of local references (server/transports/local/policy-scope.ts and the oci:,
 * dir:, oci-archive:, docker-archive: references), against containers/image's rules:
 * the identity is the path made fully explicit (absolute, symlinks resolved; only the last
 * component may be missing, and not as a dangling symlink); dir: lists the parents as
 * namespaces, oci: and oci-archive: the path itself and then its parents; "/" never; the REF
 * of oci:DIR:REF is no part of the identity; docker-archive: has no scope but "".
 * policy-scope-skopeo.test.ts asks skopeo the same questions.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError } from '../../protocol/errors';
import { parseImageName } from '../../server/transports/all';
import { explicitPath, parentDirectories, pathAndParents } from '../../server/transports/local/policy-scope';

let base: string;
/** The temporary directory as the kernel names it (os.tmpdir() may itself be behind a symlink). */
let real: string;

before(() => {
  base = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-scope-'));
  real = realpathSync(base);
  mkdirSync(path.join(base, 'store', 'images', 'app'), { recursive: true });
  writeFileSync(path.join(base, 'store', 'images', 'app.tar'), '');
  symlinkSync(path.join(base, 'store', 'images'), path.join(base, 'link'));
  symlinkSync('store/images/app', path.join(base, 'rel-link'));
  symlinkSync(path.join(base, 'nowhere'), path.join(base, 'dangling'));
});
after(() => rmSync(base, { recursive: true, force: true }));

/** Runs fn with the working directory set to dir. */
function inDir<T>(dir: string, fn: () => T): T {
  const old = process.cwd();
  process.chdir(dir);
  try {
    return fn();
  } finally {
    process.chdir(old);
  }
}

describe('explicitPath', () => {
  it('keeps an absolute path without links as it is', () => {
    assert.equal(explicitPath(path.join(real, 'store/images/app')), path.join(real, 'store/images/app'));
  });

  it('resolves every symbolic link, absolute or relative, in any component', () => {
    const app = path.join(real, 'store/images/app');
    assert.equal(explicitPath(path.join(base, 'link/app')), app);
    assert.equal(explicitPath(path.join(base, 'rel-link')), app);
  });

  it('makes a relative path absolute against the working directory', () => {
    assert.equal(inDir(path.join(base, 'store'), () => explicitPath('images/app')), path.join(real, 'store/images/app'));
    assert.equal(inDir(path.join(base, 'store/images/app'), () => explicitPath('.')), path.join(real, 'store/images/app'));
    assert.equal(inDir(path.join(base, 'store/images'), () => explicitPath('../images/./app/')), path.join(real, 'store/images/app'));
  });

  it('allows a missing last component, resolving the links before it', () => {
    assert.equal(explicitPath(path.join(base, 'link/new-layout')), path.join(real, 'store/images/new-layout'));
    assert.equal(inDir(path.join(base, 'link'), () => explicitPath('missing')), path.join(real, 'store/images/missing'));
  });

  const refused: [string, string][] = [
    ['two missing components', 'link/missing/deeper'],
    ['a dangling symlink as the last component', 'dangling'],
    ['a missing last component written with a trailing slash', 'link/missing/'],
    ['a path through a regular file', 'store/images/app.tar/x'],
  ];
  for (const [name, rel] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(() => explicitPath(path.join(base, rel)), (err: Error) => err instanceof InvalidArgumentError && err.message.includes(JSON.stringify(path.join(base, rel))));
    });
  }
});

describe('namespace lists', () => {
  it('parentDirectories lists the parents, most specific first, never "/"', () => {
    assert.deepEqual(parentDirectories('/a/b/c'), ['/a/b', '/a']);
    assert.deepEqual(parentDirectories('/a'), []);
    assert.deepEqual(parentDirectories('/'), []);
  });
  it('pathAndParents starts with the path itself, never "/"', () => {
    assert.deepEqual(pathAndParents('/a/b/c'), ['/a/b/c', '/a/b', '/a']);
    assert.deepEqual(pathAndParents('/a'), ['/a']);
    assert.deepEqual(pathAndParents('/'), []);
  });
});

describe('local references', () => {
  const parents = (p: string): string[] => {
    const out: string[] = [];
    for (let d = path.dirname(p); d !== '/'; d = path.dirname(d)) out.push(d);
    return out;
  };

  it('oci: scopes the layout directory; the REF is no part of it', () => {
    const app = path.join(real, 'store/images/app');
    for (const name of [`oci:${base}/link/app:v1`, `oci:${base}/link/app`, `oci:${base}/rel-link:other`]) {
      const ref = parseImageName(name);
      assert.equal(ref.policyIdentity(), app, name);
      assert.deepEqual(ref.policyNamespaces(), [app, ...parents(app)], name);
      assert.equal(ref.dockerReference, undefined);
    }
  });

  it('dir: scopes the directory, with its parents as namespaces', () => {
    const ref = parseImageName(`dir:${base}/link/app`);
    const app = path.join(real, 'store/images/app');
    assert.equal(ref.policyIdentity(), app);
    assert.deepEqual(ref.policyNamespaces(), parents(app));
    assert.ok(!ref.policyNamespaces().includes('/'));
  });

  it('oci-archive: scopes the archive file, not its REF', () => {
    const tar = path.join(real, 'store/images/app.tar');
    const ref = parseImageName(`oci-archive:${base}/link/app.tar:v1`);
    assert.equal(ref.policyIdentity(), tar);
    assert.deepEqual(ref.policyNamespaces(), [tar, ...parents(tar)]);
  });

  it('relative references resolve against the working directory', () => {
    const app = path.join(real, 'store/images/app');
    inDir(path.join(base, 'link'), () => {
      assert.equal(parseImageName('oci:app:v1').policyIdentity(), app);
      assert.equal(parseImageName('dir:./app').policyIdentity(), app);
      assert.equal(parseImageName('oci-archive:../images/app.tar').policyIdentity(), `${app}.tar`);
    });
  });

  it('"/" and top-level directories: "/" is never a namespace', () => {
    assert.equal(parseImageName('dir:/').policyIdentity(), '/');
    assert.deepEqual(parseImageName('dir:/').policyNamespaces(), []);
    assert.deepEqual(parseImageName('oci:/').policyNamespaces(), []);
    assert.equal(realpathSync('/usr'), '/usr', 'this test wants /usr to be a real directory');
    assert.deepEqual(parseImageName('dir:/usr').policyNamespaces(), []);
    assert.deepEqual(parseImageName('oci:/usr').policyNamespaces(), ['/usr']);
  });

  it('an unresolvable path fails the policy lookup, not the parsing', () => {
    const ref = parseImageName(`oci:${base}/missing/deeper:v1`);
    assert.throws(() => ref.policyIdentity(), InvalidArgumentError);
    assert.throws(() => ref.policyNamespaces(), InvalidArgumentError);
  });

  it('resolves once: the scope stays what it was when first asked for', () => {
    mkdirSync(path.join(base, 'moving'));
    const ref = parseImageName(`dir:${base}/moving`);
    const first = ref.policyIdentity();
    renameSync(path.join(base, 'moving'), path.join(base, 'moved'));
    symlinkSync(path.join(base, 'store'), path.join(base, 'moving'));
    assert.equal(ref.policyIdentity(), first);
    assert.equal(parseImageName(`dir:${base}/moving`).policyIdentity(), path.join(real, 'store'), 'a new reference sees the new link');
  });

  it('docker-archive: has no scope but the transport default', () => {
    for (const name of [`docker-archive:${base}/link/app.tar`, `docker-archive:${base}/link/app.tar:busybox:1`, 'docker-archive:/nonexistent/x.tar:@0']) {
      const ref = parseImageName(name);
      assert.equal(ref.policyIdentity(), '', name);
      assert.deepEqual(ref.policyNamespaces(), [], name);
    }
    assert.equal(parseImageName(`docker-archive:${base}/a.tar:busybox`).dockerReference?.tag, 'latest');
    assert.equal(parseImageName(`docker-archive:${base}/a.tar:@1`).dockerReference, undefined);
  });
});
