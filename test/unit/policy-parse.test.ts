/**
 * containers-policy.json(5) parsing: the man page's examples load; malformed policies are
 * refused with containers/image's words, and skopeo refuses the very same files (it is asked
 * with `skopeo --policy P copy` of an image that does not exist: a policy it accepts gets as
 * far as opening the image, one it refuses stops at "Error loading trust policy").
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { InvalidConfigError } from '../../protocol/errors';
import { loadPolicy } from '../../server/policy/load';
import { parsePolicy, PolicyFormatError } from '../../server/policy/parse';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-parse-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** skopeo's loading error for a policy text, or undefined when it loads it. */
function skopeoLoadError(text: string): string | undefined {
  const file = path.join(tmp, `p${++n}.json`);
  writeFileSync(file, text);
  const r = spawnSync('skopeo', ['--policy', file, 'copy', '-q', `dir:${tmp}/no-such-image`, `dir:${tmp}/out`], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  // logrus quotes the message: inner quotes come as \".
  const m = /Error loading trust policy: invalid policy in \\"[^"\\]*\\": (.*)"$/m.exec(r.stderr);
  return m === null ? undefined : m[1]!.replace(/\\"/g, '"');
}

function layerpipeError(text: string): string | undefined {
  try {
    parsePolicy(text);
    return undefined;
  } catch (err) {
    assert.ok(err instanceof PolicyFormatError, String(err));
    return err.message;
  }
}

const KEY = '/etc/pki/containers/key.gpg';
const signedBy = (extra: object = {}) => ({ type: 'signedBy', keyType: 'GPGKeys', keyPath: KEY, ...extra });

describe('policy examples of containers-policy.json(5)', () => {
  const examples: Record<string, unknown> = {
    'reject by default, accept some': {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          'private-registry.example.com': [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: '/etc/keys/private-registry.example.com.gpg' }],
          'registry.access.redhat.com': [signedBy({ signedIdentity: { type: 'matchRepository' } })],
          'docker.io/library/busybox': [{ type: 'insecureAcceptAnything' }],
          'hostname:5000/myns/official': [signedBy({ keyPaths: undefined })],
          'registry.example.com/mirror': [signedBy({ signedIdentity: { type: 'remapIdentity', prefix: 'registry.example.com/mirror', signedPrefix: 'docker.io' } })],
          '*.example.com': [{ type: 'reject' }],
        },
        oci: { '': [{ type: 'insecureAcceptAnything' }] },
        dir: { '': [{ type: 'insecureAcceptAnything' }], '/srv/images': [{ type: 'reject' }] },
        'docker-daemon': { '': [{ type: 'insecureAcceptAnything' }] },
      },
    },
    'accept anything': { default: [{ type: 'insecureAcceptAnything' }] },
    'every signedIdentity kind and key source': {
      default: [
        signedBy({ signedIdentity: { type: 'matchExact' } }),
        { type: 'signedBy', keyType: 'GPGKeys', keyPaths: [KEY, '/k2'], signedIdentity: { type: 'matchRepoDigestOrExact' } },
        { type: 'signedBy', keyType: 'GPGKeys', keyData: Buffer.from('key').toString('base64'), signedIdentity: { type: 'exactReference', dockerReference: 'docker.io/library/busybox:latest' } },
        signedBy({ signedIdentity: { type: 'exactRepository', dockerRepository: 'quay.io/ns/app' } }),
        { type: 'signedBaseLayer', baseLayerIdentity: { type: 'exactRepository', dockerRepository: 'registry.example.com/base' } },
      ],
    },
  };
  for (const [name, policy] of Object.entries(examples)) {
    it(name, () => {
      const text = JSON.stringify(policy);
      assert.equal(layerpipeError(text), undefined);
      assert.equal(skopeoLoadError(text), undefined);
    });
  }

  it('keeps what it parsed', () => {
    const p = parsePolicy(JSON.stringify(examples['reject by default, accept some']));
    assert.deepEqual(p.default, [{ type: 'reject' }]);
    const docker = p.transports.get('docker')!;
    assert.deepEqual(docker.get('docker.io/library/busybox'), [{ type: 'insecureAcceptAnything' }]);
    const rh = docker.get('registry.access.redhat.com')![0]!;
    assert.deepEqual(rh, { type: 'signedBy', keyType: 'GPGKeys', keys: { kind: 'keyPath', path: KEY }, signedIdentity: { type: 'matchRepository' } });
    const priv = docker.get('private-registry.example.com')![0]!;
    assert.equal(priv.type === 'signedBy' && priv.signedIdentity.type, 'matchRepoDigestOrExact', 'the default signedIdentity');
  });
});

describe('malformed policies: refused as skopeo refuses them', () => {
  const reject = [{ type: 'reject' }];
  // [text, containers/image's message]
  const cases: [string, string][] = [
    ['{}', 'Default policy is missing'],
    ['{"default":[]}', 'List of verification policy requirements must not be empty'],
    ['{"default":[{"type":"reject"}],"x":1}', 'Unknown key "x"'],
    ['{"default":[{"type":"reject"}],"default":[{"type":"reject"}]}', 'Duplicate key "default"'],
    ['{"default":[{"type":"foo"}]}', 'Unknown policy requirement type "foo"'],
    ['{"default":[{"type":"reject","a":1}]}', 'Unknown key "a"'],
    ['{"default":[{"type":"reject","type":"reject"}]}', 'Duplicate key "type"'],
    [JSON.stringify({ default: [{ type: 'signedBy', keyType: 'GPGKeys' }] }), 'Exactly one of keyPath, keyPaths and keyData must be specified, none of them present'],
    [JSON.stringify({ default: [signedBy({ keyData: 'eA==' })] }), 'Exactly one of keyPath, keyPaths and keyData must be specified, more than one present'],
    [JSON.stringify({ default: [signedBy({ keyPath: '' })] }), 'exactly one of keyPath, keyPaths and keyData must be specified'],
    [JSON.stringify({ default: [signedBy({ keyType: 'Nope' })] }), 'Unrecognized keyType value "Nope"'],
    [JSON.stringify({ default: [signedBy({ signedIdentity: { type: 'matchSomething' } })] }), 'Unknown policy reference match type "matchSomething"'],
    [JSON.stringify({ default: [signedBy({ signedIdentity: { type: 'exactReference', dockerReference: 'busybox' } })] }), 'dockerReference busybox contains neither a tag nor digest'],
    [JSON.stringify({ default: [signedBy({ signedIdentity: { type: 'exactReference' } })] }), 'Key "dockerReference" missing in a JSON object'],
    [JSON.stringify({ default: [signedBy({ signedIdentity: { type: 'matchExact', x: 1 } })] }), 'Unknown key "x"'],
    [JSON.stringify({ default: [signedBy({ signedIdentity: { type: 'remapIdentity', prefix: 'bad prefix', signedPrefix: 'quay.io' } })] }), 'prefix "bad prefix" is not valid'],
    [JSON.stringify({ default: [{ type: 'signedBaseLayer' }] }), 'Key "baseLayerIdentity" missing in a JSON object'],
    [JSON.stringify({ default: reject, transports: { dir: { rel: reject } } }), 'Unknown key "rel"'],
    [JSON.stringify({ default: reject, transports: { dir: { '/': reject } } }), 'Unknown key "/"'],
    [JSON.stringify({ default: reject, transports: { oci: { '/a/../b': reject } } }), 'Unknown key "/a/../b"'],
    [JSON.stringify({ default: reject, transports: { 'oci-archive': { '/a/': reject } } }), 'Unknown key "/a/"'],
    [JSON.stringify({ default: reject, transports: { 'docker-archive': { '/a': reject } } }), 'Unknown key "/a"'],
    [JSON.stringify({ default: reject, transports: { dir: { '': [] } } }), 'List of verification policy requirements must not be empty'],
    [JSON.stringify({ default: [signedBy({ keyPath: undefined, keyData: '!!' })] }), 'illegal base64 data'],
  ];
  for (const [text, message] of cases) {
    it(message, () => {
      const ours = layerpipeError(text);
      assert.ok(ours !== undefined && ours.startsWith(message), `layerpipe: ${ours}`);
      const theirs = skopeoLoadError(text);
      assert.ok(theirs !== undefined, 'skopeo loads it');
      // Go adds the byte offset to base64 errors; every other message is the same text.
      if (message.startsWith('illegal base64')) assert.ok(theirs.startsWith(message), theirs);
      else assert.equal(theirs, message);
    });
  }

  it('wrong JSON types and bad syntax are refused by both, with a clear message here', () => {
    for (const text of ['{"default":"x"}', 'nonsense', '{"default":[{"type":"reject"}]} extra', '{"default":[1]}', '{"default":[{"type":"reject"}],"transports":{"dir":[]}}']) {
      assert.ok(layerpipeError(text) !== undefined, text);
      assert.ok(skopeoLoadError(text) !== undefined, text);
    }
  });
});

describe('loading', () => {
  it('names the file, and the problem, as InvalidConfigError', async () => {
    const file = path.join(tmp, 'bad.json');
    writeFileSync(file, '{"default":[]}');
    await assert.rejects(loadPolicy({ path: file, insecure: false }), (err: Error) =>
      err instanceof InvalidConfigError && err.message === `Error loading trust policy: invalid policy in "${file}": List of verification policy requirements must not be empty`);
    await assert.rejects(loadPolicy({ path: path.join(tmp, 'missing.json'), insecure: false }), /Error loading trust policy: open .*missing.json: no such file or directory/);
  });

  it('--insecure-policy reads no file', async () => {
    assert.deepEqual((await loadPolicy({ path: path.join(tmp, 'missing.json'), insecure: true })).default, [{ type: 'insecureAcceptAnything' }]);
  });

  it("the user's file wins over the system's when it exists", async () => {
    const home = path.join(tmp, 'home');
    const user = path.join(home, '.config', 'containers');
    mkdirSync(user, { recursive: true });
    writeFileSync(path.join(user, 'policy.json'), '{"default":[{"type":"reject"}]}');
    assert.deepEqual((await loadPolicy({ path: undefined, insecure: false, home })).default, [{ type: 'reject' }]);
  });
});
